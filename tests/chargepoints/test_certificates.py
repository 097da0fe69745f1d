"""chargepoints.certificates: the whitepaper's CSR rules and the certificates the CA issues.

The wire behaviour (SignCertificate -> CertificateSigned over daphne) is in
test_security_extension.py; here, the key types and limits that are slow or
awkward to drive through a charge point.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargepoints import certificates
from chargepoints.certificates import CertificateAuthority, CSRRejected, check_csr


def make_authority(key, *, days: int = 3650) -> CertificateAuthority:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit test CA")])
    now = datetime.now(timezone.utc)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, algorithm)
    )
    return CertificateAuthority(certificate, certificates.pem(certificate), key)


def csr_pem(key, *names: str) -> str:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rsa_ca_issues_a_client_certificate_for_an_rsa_csr():
    authority = make_authority(RSA_2048)
    csr = check_csr(
        csr_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), "CP1"),
        "CP1",
    )
    issued = authority.issue(csr, validity_days=10)
    issued.verify_directly_issued_by(authority.certificate)
    usage = issued.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_encipherment, usage.key_cert_sign) == (
        True,
        True,
        False,
    )
    assert list(issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert issued.signature_hash_algorithm.name == "sha256"


def test_ed25519_ca_signs_an_ec_csr_with_key_agreement():
    authority = make_authority(ed25519.Ed25519PrivateKey.generate())
    csr = check_csr(csr_pem(ec.generate_private_key(ec.SECP384R1()), "CP2"), "CP2")
    issued = authority.issue(csr, validity_days=10)
    issued.verify_directly_issued_by(authority.certificate)
    usage = issued.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.key_agreement, usage.key_encipherment) == (True, False)


def test_issued_certificate_never_outlives_the_ca():
    authority = make_authority(ec.generate_private_key(ec.SECP256R1()), days=5)
    csr = check_csr(csr_pem(ec.generate_private_key(ec.SECP256R1()), "CP3"), "CP3")
    issued = authority.issue(csr, validity_days=365)
    assert issued.not_valid_after_utc == authority.certificate.not_valid_after_utc


def test_serial_numbers_are_random():
    authority = make_authority(ec.generate_private_key(ec.SECP256R1()))
    csr = check_csr(csr_pem(ec.generate_private_key(ec.SECP256R1()), "CP4"), "CP4")
    serials = {authority.issue(csr, validity_days=1).serial_number for _ in range(5)}
    assert len(serials) == 5 and min(serials).bit_length() > 64


def test_csr_with_two_common_names_is_rejected():
    with pytest.raises(CSRRejected, match="exactly one commonName"):
        check_csr(csr_pem(ec.generate_private_key(ec.SECP256R1()), "CP5", "CP5"), "CP5")


def test_ed25519_csr_is_rejected():
    with pytest.raises(CSRRejected, match="is not an RSA or elliptic-curve key"):
        check_csr(csr_pem(ed25519.Ed25519PrivateKey.generate(), "CP6"), "CP6")


def test_minimum_rsa_size_is_the_setting(settings):
    settings.LEVITY_CSMS_CSR_MIN_RSA_BITS = 3072
    with pytest.raises(CSRRejected, match="2048 bits is shorter than 3072"):
        check_csr(csr_pem(RSA_2048, "CP7"), "CP7")


def test_minimum_ec_size_is_the_setting(settings):
    settings.LEVITY_CSMS_CSR_MIN_EC_BITS = 384
    with pytest.raises(CSRRejected, match="256 bits is shorter than 384"):
        check_csr(csr_pem(ec.generate_private_key(ec.SECP256R1()), "CP8"), "CP8")
    assert check_csr(csr_pem(ec.generate_private_key(ec.SECP384R1()), "CP8"), "CP8")
