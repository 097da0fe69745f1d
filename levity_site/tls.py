"""Daphne's TLS endpoint for charge points: ``levity-tls:`` endpoint strings.

Twisted's own ``ssl:`` endpoint cannot ask clients for a certificate. This one
can: ``clientCA=`` names a PEM file of the CAs that issue charge points' client
certificates (security profile 3). A client certificate is then requested but not
required (profile 2 charge points present none); one that OpenSSL cannot verify
against those CAs (another CA, expired) fails the TLS handshake. What the
handshake verified reaches Levity's check in the ASGI ``tls`` scope extension
(levity_site.server), which then matches the certificate to the charge point id.

    python -m levity_site.server \\
        -e levity-tls:port=8443:privateKey=server.key:certKey=server.crt:clientCA=charge-point-ca.pem \\
        levity_site.asgi:application

Options: ``port``, ``privateKey``, ``certKey`` (default: privateKey),
``extraCertChain`` (intermediate CAs of the server certificate), ``clientCA``,
``interface``, ``backlog``; as Twisted's ``ssl:`` where they share a name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import crypto
from twisted.internet import endpoints, ssl


def certificate_options(
    private_key: str, certificate: str, *, extra_chain: str | None = None, client_ca: str | None = None
) -> ssl.CertificateOptions:
    """TLS options: the server's certificate, and (with ``client_ca``) client certificates requested."""
    key_pem = Path(private_key).read_bytes()
    certificate_pem = Path(certificate).read_bytes()
    server = ssl.PrivateCertificate.loadPEM(certificate_pem + b"\n" + key_pem)
    chain = []
    if extra_chain:
        chain = [c.original for c in _certificates(extra_chain)]
    options: dict[str, Any] = {}
    if client_ca:
        # Not trustRoot=: Twisted allows it only with a certificate required, and
        # charge points of profile 2 present none.
        options = {
            "verify": True,
            "caCerts": [c.original for c in _certificates(client_ca)],
            "requireCertificate": False,
        }
    return ssl.CertificateOptions(
        privateKey=server.privateKey.original,
        certificate=server.original,
        extraCertChain=chain or None,
        **options,
    )


def _certificates(path: str) -> list[ssl.Certificate]:
    certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    return [ssl.Certificate(crypto.X509.from_cryptography(c)) for c in certificates]


def server_endpoint(
    reactor,
    port: str,
    privateKey: str,
    certKey: str | None = None,
    extraCertChain: str | None = None,
    clientCA: str | None = None,
    interface: str = "",
    backlog: str = "50",
) -> endpoints.SSL4ServerEndpoint:
    options = certificate_options(
        privateKey, certKey or privateKey, extra_chain=extraCertChain, client_ca=clientCA
    )
    return endpoints.SSL4ServerEndpoint(
        reactor, int(port), options, backlog=int(backlog), interface=interface
    )
