"""Daphne's TLS endpoint for charge points: ``levity-tls:`` endpoint strings.

Twisted's own ``ssl:`` endpoint cannot ask clients for a certificate. This one
can: ``clientCA=`` names a PEM file of the CAs that issue charge points' client
certificates (security profile 3), intermediate CAs included. A client certificate
is then requested but not required (profile 2 charge points present none); one
that OpenSSL cannot verify against those CAs (another CA, expired, revoked by a CRL
of ``LEVITY_TLS_CRL``) fails the TLS handshake. What the handshake verified reaches
Levity's check in the ASGI ``tls`` scope extension (levity_site.server), which then
matches the certificate to the charge point id.

    python -m levity_site.server \\
        -e levity-tls:port=8443:privateKey=server.key:certKey=server.crt:clientCA=charge-point-ca.pem \\
        levity_site.asgi:application

Options: ``port``, ``privateKey``, ``certKey`` (default: privateKey),
``extraCertChain`` (intermediate CAs of the server certificate), ``clientCA``,
``interface``, ``backlog``; as Twisted's ``ssl:`` where they share a name.

A handshake that fails (a certificate OpenSSL refuses, a client that does not trust
the server, plain text on the TLS port) is logged with the client's address and
OpenSSL's reason, and counts against the address's failed-handshake throttle
(chargepoints.session.limits); an address past it is cut off before its handshake.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet import endpoints, ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

logger = logging.getLogger("levity.tls")

#: OpenSSL's X509_V_ERR_* codes a charge point's certificate typically fails with,
#: named for the log (as OpenSSL's X509_verify_cert_error_string names them).
VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    3: "unable to get certificate CRL",
    7: "certificate signature failure",
    8: "CRL signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    11: "CRL is not yet valid",
    12: "CRL has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}

#: Why OpenSSL refused a connection's client certificate, by its TLS protocol.
_refused_certificates: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


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


_CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def load_crls(path: str) -> list[x509.CertificateRevocationList]:
    """The CRLs of a PEM file (one or more); ValueError if it holds none or a bad one."""
    blocks = _CRL_PEM.findall(Path(path).read_bytes())
    if not blocks:
        raise ValueError(f"{path} holds no PEM CRL (-----BEGIN X509 CRL-----)")
    return [x509.load_pem_x509_crl(block) for block in blocks]


@implementer(IOpenSSLServerConnectionCreator)
class ChargePointTLS:
    """Makes the OpenSSL connection of each TLS connection (Twisted's connection creator).

    Its context is Twisted's ``CertificateOptions``' with, for client
    certificates, a verify callback that notes why OpenSSL refused one (for the
    log) and, with ``crl``, the CRLs in the certificate store and OpenSSL's CRL
    check on the whole chain. When the CRL file changes (its modification time,
    looked at once a second at most), new connections get a context with the new
    CRLs; a CRL file that no longer loads keeps the last good one (logged).
    """

    CRL_CHECK_INTERVAL = 1.0

    def __init__(
        self,
        private_key: str,
        certificate: str,
        *,
        extra_chain: str | None = None,
        client_ca: str | None = None,
        crl: str = "",
        clock=None,
    ) -> None:
        self._options = {"private_key": private_key, "certificate": certificate, "extra_chain": extra_chain}
        self.client_ca = client_ca
        self.crl = crl if client_ca else ""
        self._clock = clock
        self._crl_stamp = self._stamp()
        self._checked_at = 0.0
        self.context = self._make_context()

    def _make_context(self) -> SSL.Context:
        options = certificate_options(**self._options, client_ca=self.client_ca)  # type: ignore[arg-type]  # str paths
        # A fresh CertificateOptions' context is this creator's alone.
        context = options.getContext()
        if self.client_ca:
            context.set_verify(context.get_verify_mode(), _note_refused_certificate)
        if self.crl:
            store = context.get_cert_store()
            assert store is not None  # a context always has one
            for revocation_list in load_crls(self.crl):
                store.add_crl(revocation_list)
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
        return context

    def _stamp(self) -> tuple[int, int] | None:
        if not self.crl:
            return None
        try:
            status = os.stat(self.crl)
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size)

    def _now(self) -> float:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        return self._clock.seconds()

    def reload_if_changed(self) -> None:
        """A new context if the CRL file changed since it was read."""
        if not self.crl:
            return
        now = self._now()
        if now - self._checked_at < self.CRL_CHECK_INTERVAL:
            return
        self._checked_at = now
        stamp = self._stamp()
        if stamp == self._crl_stamp:
            return
        self._crl_stamp = stamp
        try:
            self.context = self._make_context()
        except (OSError, ValueError) as exc:
            logger.error("LEVITY_TLS_CRL %s could not be reloaded, the previous CRLs stay: %s", self.crl, exc)
            return
        logger.info("LEVITY_TLS_CRL %s reloaded", self.crl)

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        self.reload_if_changed()
        return SSL.Connection(self.context, None)


def _note_refused_certificate(
    connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
) -> bool:
    """OpenSSL's verify callback: keep OpenSSL's verdict, note why it refused a certificate."""
    if not ok:
        reason = VERIFY_ERRORS.get(error, f"X509 verify error {error}")
        subject = certificate.get_subject().commonName
        _refused_certificates.setdefault(
            connection.get_app_data(), f"{reason} (certificate {subject!r}, depth {depth})"
        )
    return bool(ok)


def client_certificate_chain(transport) -> list[str]:
    """The ASGI ``client_cert_chain`` of a TLS connection: PEM, the client's certificate
    first, then the certificates it sent along (intermediate CAs); empty without one."""
    certificate = transport.getPeerCertificate()
    if certificate is None:
        return []
    leaf = certificate.to_cryptography()
    # The OpenSSL connection (getHandle(), public) has what the client sent along,
    # which Twisted's transport does not show; on a server, without the client's own.
    sent = transport.getHandle().get_peer_cert_chain(as_cryptography=True) or []
    chain = [leaf, *(c for c in sent if c != leaf)]
    return [c.public_bytes(Encoding.PEM).decode() for c in chain]


# --- failed handshakes ---------------------------------------------------------------------


def _address(transport) -> tuple[str, int]:
    peer = transport.getPeer()
    return str(getattr(peer, "host", "")), int(getattr(peer, "port", 0))


def handshake_allowed(transport) -> bool:
    """Whether the connection's address may try a TLS handshake (the failed-handshake throttle)."""
    from chargepoints.session import limits

    host, port = _address(transport)
    if limits.handshake_allowed(host):
        return True
    logger.warning("%s:%s: TLS connection refused, too many failed handshakes from its address", host, port)
    _refused(host, "throttled", "too many failed handshakes")
    return False


def _refused(address: str, kind: str, reason: str) -> None:
    from plugins.signals import connection_refused

    if connection_refused.receivers:
        connection_refused.send_robust(None, charge_point_id="", address=address, kind=kind, reason=reason)


def handshake_failed(transport, reason: Failure) -> None:
    """A TLS connection ended before its handshake completed: if TLS failed it, log and count it.

    A client that merely goes away (a port check) or is cut off by the handshake
    deadline (logged there) is not a TLS failure.
    """
    refused_certificate = _refused_certificates.pop(transport, None)
    if not reason.check(SSL.Error):
        return
    detail = refused_certificate or describe(reason.value)
    from chargepoints.session import limits

    host, port = _address(transport)
    logger.warning("%s:%s: TLS handshake failed: %s", host, port, detail)
    limits.handshake_failed(host, f"TLS handshake: {detail}")
    _refused(host, "tls", detail)


def describe(error: BaseException) -> str:
    """OpenSSL's reasons in an ``SSL.Error`` ("certificate verify failed", "http request")."""
    queue = error.args[0] if error.args else None
    if isinstance(queue, list):
        reasons = [str(entry[-1]) for entry in queue if isinstance(entry, tuple) and entry and entry[-1]]
        if reasons:
            return "; ".join(reasons)
    return str(error) or type(error).__name__


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
    from django.conf import settings

    creator = ChargePointTLS(
        privateKey,
        certKey or privateKey,
        extra_chain=extraCertChain,
        client_ca=clientCA,
        crl=getattr(settings, "LEVITY_TLS_CRL", ""),
        clock=reactor,
    )
    return endpoints.SSL4ServerEndpoint(
        reactor, int(port), creator, backlog=int(backlog), interface=interface
    )
