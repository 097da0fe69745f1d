"""Certificates made by the tests (``cryptography``): a CA, a server, and charge points,
and a daphne serving wss:// on Levity's ``levity-tls:`` endpoint beside ws://."""

from __future__ import annotations

import base64
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.processes import free_port
from tests.conftest import PROJECT_DIR, DaphneServer


def self_signed_pem(common_name: str = "Levity test root") -> str:
    """A self-signed certificate in PEM, valid for a day (for payloads that carry one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Issued:
    certificate: Path
    key: Path

    def pem(self) -> str:
        return self.certificate.read_text()

    def serial_number(self) -> int:
        return x509.load_pem_x509_certificate(self.certificate.read_bytes()).serial_number


class PKI:
    """A CA in ``directory``, issuing server and client certificates as files."""

    def __init__(self, directory: Path, name: str = "Levity test CA", *, issuer: PKI | None = None):
        """A root CA, or with ``issuer`` an intermediate CA that ``issuer`` signs."""
        self.directory = directory
        self.issuer = issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate: x509.Certificate
        now = datetime.now(timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
        self.certificate = builder.sign(issuer.key if issuer else self.key, hashes.SHA256())
        self.ca_file = directory / f"{name.replace(' ', '-')}.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def revocation_list(self, revoked: list[Issued] = (), *, expired: bool = False) -> bytes:  # type: ignore[assignment]  # a tuple default
        """This CA's CRL (PEM), revoking ``revoked``; with ``expired``, past its next update."""
        now = datetime.now(timezone.utc)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - timedelta(days=2))
            .next_update(now - timedelta(days=1) if expired else now + timedelta(days=7))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        for issued in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(issued.serial_number())
                .revocation_date(now - timedelta(hours=1))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def issue(
        self, common_name: str, *, server: bool = False, expired: bool = False, send_chain: bool = True
    ) -> Issued:
        """A certificate (its file: the certificate, then an intermediate CA's own unless
        not ``send_chain``) and its key."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        not_after = now - timedelta(hours=1) if expired else now + timedelta(days=7)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=2))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = f"{common_name}{'-expired' if expired else ''}-{time.monotonic_ns()}"
        certificate_path = self.directory / f"{stem}.crt"
        key_path = self.directory / f"{stem}.key"
        chain = b""
        if self.issuer is not None and send_chain:  # the client sends its intermediate CA too
            chain = self.certificate.public_bytes(serialization.Encoding.PEM)
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + chain)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Issued(certificate_path, key_path)

    def client_context(self, client: Issued | None = None) -> ssl.SSLContext:
        """A charge point's TLS context: trusts this (root) CA, presents ``client`` if given."""
        root = self
        while root.issuer is not None:
            root = root.issuer
        context = ssl.create_default_context(cafile=str(root.ca_file))
        if client is not None:
            context.load_cert_chain(str(client.certificate), str(client.key))
        return context


class TLSDaphneServer(DaphneServer):
    """Daphne on ws://127.0.0.1:<port> and wss://127.0.0.1:<tls_port> (``levity-tls:``)."""

    def __init__(
        self, env: dict[str, str], log_path: Path, server_certificate: Issued, client_ca: Path | str
    ):
        super().__init__(env, log_path)
        self.tls_port = free_port()
        endpoint = (
            f"levity-tls:port={self.tls_port}:interface=127.0.0.1:privateKey={server_certificate.key}"
            f":certKey={server_certificate.certificate}:clientCA={client_ca}"
        )
        self.argv = [
            sys.executable,
            "-m",
            "levity_site.server",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-e",
            endpoint,
            "levity_site.asgi:application",
        ]
        self.cwd = PROJECT_DIR

    def ready(self) -> bool:
        for port in (self.port, self.tls_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                return False
        return True

    def wss_url(self, charge_point_id: str) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ocpp/{charge_point_id}"


#: How long a test's connect waits for the server's answer: checking a password runs
#: Django's PBKDF2 (slow by design), slower still on a loaded test machine.
HASHER_WAIT = 60


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
