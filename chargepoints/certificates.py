"""The certificate authority that signs charge point certificates (OCPP 1.6 security extension).

A charge point sends a certificate signing request (SignCertificate, PEM); Levity
checks it against the whitepaper's rules -- a valid signature, the charge point's
own id as the subject's commonName, a key of an allowed type and size -- and signs
it with the CA configured by LEVITY_CSMS_CA_CERT_FILE / LEVITY_CSMS_CA_KEY_FILE.
Every cryptographic operation is the `cryptography` package's.

This module knows nothing of sessions: the OCPP handler (chargepoints.ocpp16.security)
calls it and sends the result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: How far back an issued certificate's validity starts, so that a charge point whose
#: clock is a little behind the server's accepts it at once.
CLOCK_SKEW = timedelta(minutes=5)


class CSRRejected(Exception):
    """A certificate signing request Levity does not sign; the message says why."""


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA certificate(s) and private key that sign charge point certificates."""

    certificate: x509.Certificate
    #: The certificates of LEVITY_CSMS_CA_CERT_FILE, as PEM, the issuing CA first:
    #: sent after the issued certificate in CertificateSigned.
    chain_pem: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    def issue(self, csr: x509.CertificateSigningRequest, *, validity_days: int) -> x509.Certificate:
        """Sign a checked CSR: a client-authentication end-entity certificate for its subject.

        The serial number is random; the validity starts CLOCK_SKEW ago and ends
        ``validity_days`` later, but never after the CA's own.
        """
        now = datetime.now(timezone.utc)
        not_after = min(now + timedelta(days=validity_days), self.certificate.not_valid_after_utc)
        public_key = csr.public_key()
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=isinstance(public_key, ec.EllipticCurvePublicKey),
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.certificate.public_key()  # type: ignore[arg-type]  # a CA's key signs
                ),
                critical=False,
            )
        )
        algorithm = None if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(self.private_key, algorithm)

    def certificate_chain(self, certificate: x509.Certificate) -> str:
        """The certificateChain of CertificateSigned: the issued certificate, then the CA's."""
        return pem(certificate) + self.chain_pem


def check_csr(pem: str, charge_point_id: str) -> x509.CertificateSigningRequest:
    """The CSR, if Levity may sign it for this charge point; else raise CSRRejected.

    The whitepaper's rules: the request is signed by the key it carries, its
    subject's commonName is the charge point's identity (the id it connects with),
    and its key is RSA or elliptic-curve of at least the configured size.
    """
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CSRRejected("not a PEM-encoded PKCS#10 certificate signing request") from None
    try:
        signature_valid = csr.is_signature_valid
    except UnsupportedAlgorithm:
        signature_valid = False
    if not signature_valid:
        raise CSRRejected("the CSR's signature does not verify with its public key")
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) != 1:
        raise CSRRejected("the CSR's subject must have exactly one commonName")
    if common_names[0].value != charge_point_id:
        raise CSRRejected(f"the CSR's commonName {common_names[0].value!r} is not the charge point's id")
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CSRRejected("the CSR's public key cannot be read") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < settings.LEVITY_CSMS_CSR_MIN_RSA_BITS:
            raise CSRRejected(
                f"an RSA key of {key.key_size} bits is shorter than "
                f"{settings.LEVITY_CSMS_CSR_MIN_RSA_BITS} (LEVITY_CSMS_CSR_MIN_RSA_BITS)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < settings.LEVITY_CSMS_CSR_MIN_EC_BITS:
            raise CSRRejected(
                f"an elliptic-curve key of {key.curve.key_size} bits is shorter than "
                f"{settings.LEVITY_CSMS_CSR_MIN_EC_BITS} (LEVITY_CSMS_CSR_MIN_EC_BITS)"
            )
    else:
        raise CSRRejected(f"a {type(key).__name__} is not an RSA or elliptic-curve key")
    return csr


def is_configured() -> bool:
    return bool(settings.LEVITY_CSMS_CA_CERT_FILE or settings.LEVITY_CSMS_CA_KEY_FILE)


@functools.cache
def configured_authority() -> CertificateAuthority | None:
    """The CA of the settings, loaded once; None when none is configured.

    Raises ImproperlyConfigured, naming the setting, for a CA that cannot sign:
    a missing or unreadable file, no CA certificate, a key that is not the
    certificate's, a CA certificate that has expired.
    """
    if not is_configured():
        return None
    cert_file, key_file = (
        settings.LEVITY_CSMS_CA_CERT_FILE,
        settings.LEVITY_CSMS_CA_KEY_FILE,
    )
    if not (cert_file and key_file):
        missing = "LEVITY_CSMS_CA_KEY_FILE" if cert_file else "LEVITY_CSMS_CA_CERT_FILE"
        raise ImproperlyConfigured(
            f"{missing} is not set: the CA that signs charge point certificates needs "
            "both LEVITY_CSMS_CA_CERT_FILE and LEVITY_CSMS_CA_KEY_FILE."
        )
    cert_pem = _read("LEVITY_CSMS_CA_CERT_FILE", cert_file)
    try:
        certificates = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_CERT_FILE={cert_file!r} holds no PEM certificate."
        ) from None
    certificate = certificates[0]
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_CERT_FILE={cert_file!r}: its first certificate is not a CA "
            "certificate (BasicConstraints CA:TRUE)."
        )
    if certificate.not_valid_after_utc <= datetime.now(timezone.utc):
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_CERT_FILE={cert_file!r}: the CA certificate expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}."
        )
    password = settings.LEVITY_CSMS_CA_KEY_PASSWORD
    try:
        private_key = serialization.load_pem_private_key(
            _read("LEVITY_CSMS_CA_KEY_FILE", key_file),
            password.encode() if password else None,
        )
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_KEY_FILE={key_file!r} cannot be loaded ({exc}); is "
            "LEVITY_CSMS_CA_KEY_PASSWORD right?"
        ) from None
    if isinstance(private_key, ed448.Ed448PrivateKey) or not isinstance(
        private_key,
        (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey),
    ):
        raise ImproperlyConfigured(f"LEVITY_CSMS_CA_KEY_FILE={key_file!r}: use an RSA, EC or Ed25519 key.")
    if _public_bytes(private_key.public_key()) != _public_bytes(certificate.public_key()):
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_KEY_FILE={key_file!r} is not the key of the certificate in "
            "LEVITY_CSMS_CA_CERT_FILE."
        )
    chain_pem = "".join(pem(c) for c in certificates)
    return CertificateAuthority(certificate, chain_pem, private_key)


def _read(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}={path!r} cannot be read: {exc.strerror}.") from None


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def serial_hex(certificate: x509.Certificate) -> str:
    """The serial number as OCPP writes it (CertificateHashData.serialNumber): hex."""
    return format(certificate.serial_number, "x")
