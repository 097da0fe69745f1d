"""The OCPP 1.6 security extension's charge-point-initiated messages, over a real daphne.

SecurityEventNotification, SignedFirmwareStatusNotification and LogStatusNotification
are stored and answered; SignCertificate is checked, answered, and an accepted CSR
comes back signed by the configured CA in a CertificateSigned. The test CA is made
here with `cryptography`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargepoints.models import (
    CertificateRequestOutcome,
    CertificateSigningRequest,
    ChargePointCommand,
    LogStatusNotification,
    SecurityEvent,
    SignedFirmwareStatusNotification,
)
from chargepoints.ocpp16 import protocol
from plugins.base import PluginHook
from plugins.testing import (
    after_hooks_done,
    create_test_charge_point,
    register_temporarily,
)
from tests.conftest import DaphneServer, eventually, server_env

pytestmark = pytest.mark.django_db(transaction=True)


# --- a test CA --------------------------------------------------------------------------


@dataclass
class SigningCA:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path


def make_ca(directory: Path, password: bytes | None = None) -> SigningCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Levity test CSMS CA")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return SigningCA(certificate, key, cert_file, key_file)


def make_csr(common_name: str, key=None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Levity CPO"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


CA_PASSWORD = "levity ca passphrase"


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory) -> SigningCA:
    """A CA whose key is encrypted (its passphrase in a file, as a secret would be)."""
    directory = tmp_path_factory.mktemp("ca")
    (directory / "passphrase").write_text(CA_PASSWORD + "\n")
    return make_ca(directory, CA_PASSWORD.encode())


@pytest.fixture(scope="module")
def ca_server(django_db_setup, test_db_path, tmp_path_factory, test_ca):
    """A daphne whose CA (key encrypted) signs charge point certificates, valid 30 days."""
    server = DaphneServer(
        server_env(
            test_db_path,
            LEVITY_CSMS_CA_CERT_FILE=str(test_ca.cert_file),
            LEVITY_CSMS_CA_KEY_FILE=str(test_ca.key_file),
            LEVITY_CSMS_CA_KEY_PASSWORD_FILE=str(test_ca.key_file.parent / "passphrase"),
            LEVITY_CSMS_CERT_VALIDITY_DAYS="30",
        ),
        tmp_path_factory.mktemp("ca-logs") / "daphne.log",
    ).start()
    yield server
    server.stop()


def message_id() -> str:
    return str(uuid.uuid4())


# --- SecurityEventNotification, SignedFirmwareStatusNotification, LogStatusNotification --


async def test_security_event_is_stored_and_answered_with_an_empty_payload(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        mid = message_id()
        answer = await ws.exchange(
            [
                2,
                mid,
                "SecurityEventNotification",
                {
                    "type": "InvalidCentralSystemCertificate",
                    "timestamp": "2026-03-01T10:00:00.000Z",
                    "techInfo": "certificate expired",
                },
            ]
        )
    assert answer == [3, mid, {}]
    event = await SecurityEvent.objects.aget(charge_point__charge_point_id=cp_id)
    assert (event.type, event.timestamp, event.tech_info) == (
        "InvalidCentralSystemCertificate",
        protocol.parse_timestamp("2026-03-01T10:00:00.000Z"),
        "certificate expired",
    )
    assert event.received_at is not None


async def test_a_resent_security_event_is_answered_again_and_stored_once(raw_ws, cp_id):
    event = {
        "type": "MemoryExhaustion",
        "timestamp": "2026-03-01T10:00:00.000Z",
        "techInfo": "heap",
    }
    later = {**event, "timestamp": "2026-03-01T10:05:00.000Z"}
    async with raw_ws(cp_id) as ws:
        answers = [
            await ws.exchange([2, mid, "SecurityEventNotification", payload])
            for mid, payload in [("e-1", event), ("e-2", event), ("e-3", later)]
        ]
    assert answers == [[3, "e-1", {}], [3, "e-2", {}], [3, "e-3", {}]]
    stored = [
        e.timestamp
        async for e in SecurityEvent.objects.filter(charge_point__charge_point_id=cp_id).order_by("id")
    ]
    assert stored == [
        protocol.parse_timestamp(event["timestamp"]),
        protocol.parse_timestamp(later["timestamp"]),
    ]


async def test_security_event_without_type_is_a_protocol_error_and_not_stored(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        mid = message_id()
        answer = await ws.exchange(
            [2, mid, "SecurityEventNotification", {"timestamp": "2026-03-01T10:00:00Z"}]
        )
    assert answer[:3] == [4, mid, "ProtocolError"]
    assert not await SecurityEvent.objects.filter(charge_point__charge_point_id=cp_id).aexists()


async def test_security_event_reaches_the_before_and_after_hook_signals():
    received = []

    async def receiver(sender, charge_point, context, hook, **kwargs):
        stored = await SecurityEvent.objects.filter(charge_point_id=charge_point.charge_point_pk).aexists()
        received.append((hook, dict(context.message_data), stored, context.result))
        repeated.append(getattr(context, "repeated", None))

    repeated = []

    cp = await create_test_charge_point(f"T-{uuid.uuid4().hex[:10]}")
    with register_temporarily(
        [
            (PluginHook.BEFORE_SECURITY_EVENT_NOTIFICATION, receiver),
            (PluginHook.AFTER_SECURITY_EVENT_NOTIFICATION, receiver),
        ]
    ):
        answer = await cp.connection.call_from_charge_point(
            "SecurityEventNotification",
            {"type": "TamperDetectionActivated", "timestamp": "2026-03-01T10:00:00Z"},
        )
        await after_hooks_done(cp)
    assert answer[0] == 3 and answer[2] == {}
    data = {"type": "TamperDetectionActivated", "timestamp": "2026-03-01T10:00:00Z"}
    [
        (before, before_data, before_stored, _),
        (after, after_data, after_stored, result),
    ] = received
    assert (before, after) == (
        PluginHook.BEFORE_SECURITY_EVENT_NOTIFICATION,
        PluginHook.AFTER_SECURITY_EVENT_NOTIFICATION,
    )
    assert before_data == after_data == data
    assert (before_stored, after_stored) == (False, True)
    assert protocol.to_payload(result) == {}
    assert repeated == [None, False]


async def test_the_after_hook_of_a_resent_security_event_says_it_is_repeated():
    repeated = []

    async def receiver(sender, charge_point, context, **kwargs):
        repeated.append(context.repeated)

    cp = await create_test_charge_point(f"T-{uuid.uuid4().hex[:10]}")
    event = {"type": "ResetOrReboot", "timestamp": "2026-03-01T10:00:00Z"}
    with register_temporarily(PluginHook.AFTER_SECURITY_EVENT_NOTIFICATION, receiver):
        for _ in range(2):
            await cp.connection.call_from_charge_point("SecurityEventNotification", event)
            await after_hooks_done(cp)
    assert repeated == [False, True]
    assert await SecurityEvent.objects.filter(charge_point_id=cp.charge_point_pk).acount() == 1


async def test_signed_firmware_status_notification_is_stored(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        mid = message_id()
        answer = await ws.exchange(
            [
                2,
                mid,
                "SignedFirmwareStatusNotification",
                {"status": "InvalidSignature", "requestId": 7},
            ]
        )
    assert answer == [3, mid, {}]
    row = await SignedFirmwareStatusNotification.objects.aget(charge_point__charge_point_id=cp_id)
    assert (row.status, row.request_id) == ("InvalidSignature", 7)


async def test_signed_firmware_status_outside_the_enum_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        mid = message_id()
        answer = await ws.exchange([2, mid, "SignedFirmwareStatusNotification", {"status": "Done"}])
    assert answer[:3] == [4, mid, "PropertyConstraintViolation"]


async def test_log_status_notification_is_stored(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        mid = message_id()
        answer = await ws.exchange([2, mid, "LogStatusNotification", {"status": "Uploaded", "requestId": 12}])
        mid2 = message_id()
        answer2 = await ws.exchange([2, mid2, "LogStatusNotification", {"status": "Idle"}])
    assert (answer, answer2) == ([3, mid, {}], [3, mid2, {}])
    rows = [
        (row.status, row.request_id)
        async for row in LogStatusNotification.objects.filter(charge_point__charge_point_id=cp_id).order_by(
            "id"
        )
    ]
    assert rows == [("Uploaded", 12), ("Idle", None)]


# --- SignCertificate -> CertificateSigned -----------------------------------------------


async def request_certificate(ws, csr: str) -> tuple[list, str]:
    """Send SignCertificate; return its answer frame and its message id."""
    mid = message_id()
    return await ws.exchange([2, mid, "SignCertificate", {"csr": csr}]), mid


async def test_accepted_csr_comes_back_signed_by_the_ca_in_certificate_signed(
    ca_server, raw_ws, cp_id, test_ca
):
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, make_csr(cp_id))
        # The answer comes first, then the Central System's CertificateSigned.
        assert answer == [3, mid, {"status": "Accepted"}]
        kind, call_id, action, payload = await ws.recv(timeout=15)
        assert (kind, action, list(payload)) == (
            2,
            "CertificateSigned",
            ["certificateChain"],
        )
        await ws.send([3, call_id, {"status": "Accepted"}])

        leaf, *chain = x509.load_pem_x509_certificates(payload["certificateChain"].encode())
        assert chain == [test_ca.certificate]
        leaf.verify_directly_issued_by(test_ca.certificate)
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cp_id
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert timedelta(days=30) <= lifetime <= timedelta(days=30, minutes=6)

        async def installed():
            row = await CertificateSigningRequest.objects.filter(
                charge_point__charge_point_id=cp_id,
                outcome=CertificateRequestOutcome.INSTALLED,
            ).afirst()
            return row

        request = await eventually(installed)
    assert (request.status, request.reason) == ("Accepted", "")
    assert request.serial_number == format(leaf.serial_number, "x")
    assert request.not_after == leaf.not_valid_after_utc
    assert x509.load_pem_x509_certificate(request.certificate.encode()) == leaf
    command = await ChargePointCommand.objects.aget(pk=request.command_id)
    assert (
        command.action,
        command.message_id,
        command.status,
        command.requested_by,
    ) == (
        "CertificateSigned",
        call_id,
        "accepted",
        "levity:SignCertificate",
    )
    assert command.request == payload


async def test_certificate_signed_refused_by_the_charge_point_is_recorded(ca_server, raw_ws, cp_id):
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, make_csr(cp_id))
        assert answer == [3, mid, {"status": "Accepted"}]
        _, call_id, _action, _ = await ws.recv(timeout=15)
        await ws.send([3, call_id, {"status": "Rejected"}])

        async def refused():
            return await CertificateSigningRequest.objects.filter(
                charge_point__charge_point_id=cp_id,
                outcome=CertificateRequestOutcome.REFUSED,
            ).afirst()

        request = await eventually(refused)
    assert request.serial_number  # issued, but not installed
    assert (await ChargePointCommand.objects.aget(pk=request.command_id)).status == "rejected"


async def test_certificate_not_delivered_because_the_charge_point_left_is_recorded_failed(
    ca_server, raw_ws, cp_id
):
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, make_csr(cp_id))
        assert answer == [3, mid, {"status": "Accepted"}]
        _, _, action, _ = await ws.recv(timeout=15)
        assert action == "CertificateSigned"
    # Gone without answering.

    async def failed():
        return await CertificateSigningRequest.objects.filter(
            charge_point__charge_point_id=cp_id,
            outcome=CertificateRequestOutcome.FAILED,
        ).afirst()

    request = await eventually(failed)
    assert request.reason.startswith("CertificateSigned offline")
    assert request.serial_number and request.command_id is not None


async def test_sign_certificate_while_an_earlier_one_is_being_delivered_is_rejected(ca_server, raw_ws, cp_id):
    async with raw_ws(cp_id, server=ca_server) as ws:
        first, mid = await request_certificate(ws, make_csr(cp_id))
        assert first == [3, mid, {"status": "Accepted"}]
        _, call_id, action, _ = await ws.recv(timeout=15)
        assert action == "CertificateSigned"
        # Not answered yet: a second request is refused.
        second, mid2 = await request_certificate(ws, make_csr(cp_id))
        assert second == [3, mid2, {"status": "Rejected"}]
        await ws.send([3, call_id, {"status": "Accepted"}])

        async def first_installed():
            return await CertificateSigningRequest.objects.filter(
                charge_point__charge_point_id=cp_id,
                outcome=CertificateRequestOutcome.INSTALLED,
            ).aexists()

        await eventually(first_installed)
        # Once it is done, the charge point may ask again.
        third, mid3 = await request_certificate(ws, make_csr(cp_id))
        assert third == [3, mid3, {"status": "Accepted"}]
        _, call_id, _, _ = await ws.recv(timeout=15)
        await ws.send([3, call_id, {"status": "Accepted"}])

        async def both_installed():
            return (
                await CertificateSigningRequest.objects.filter(
                    charge_point__charge_point_id=cp_id,
                    outcome=CertificateRequestOutcome.INSTALLED,
                ).acount()
                == 2
            )

        await eventually(both_installed)
    rejected = await CertificateSigningRequest.objects.aget(
        charge_point__charge_point_id=cp_id, outcome=CertificateRequestOutcome.REJECTED
    )
    assert "still being signed and sent" in rejected.reason


@pytest.mark.parametrize(
    ("csr", "reason"),
    [
        (
            lambda cp_id: make_csr("SOMEONE-ELSE"),
            "commonName 'SOMEONE-ELSE' is not the charge point's id",
        ),
        (
            lambda cp_id: "-----BEGIN CERTIFICATE REQUEST-----\nbm9wZQ==\n-----END CERTIFICATE REQUEST-----\n",
            "not a PEM-encoded",
        ),
        (
            lambda cp_id: make_csr(cp_id, rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "an RSA key of 1024 bits is shorter than 2048",
        ),
    ],
    ids=["other-common-name", "not-a-csr", "rsa-1024"],
)
async def test_invalid_csr_is_answered_rejected_and_stored_with_the_reason(
    ca_server, raw_ws, cp_id, csr, reason
):
    pem = csr(cp_id)
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, pem)
        assert answer == [3, mid, {"status": "Rejected"}]
        # Nothing follows: the next frame is the answer to a Heartbeat.
        heartbeat = message_id()
        assert (await ws.exchange([2, heartbeat, "Heartbeat", {}]))[:2] == [
            3,
            heartbeat,
        ]
    request = await CertificateSigningRequest.objects.aget(charge_point__charge_point_id=cp_id)
    assert (request.status, request.outcome, request.csr) == (
        "Rejected",
        "rejected",
        pem,
    )
    assert reason in request.reason
    assert request.serial_number == "" and request.command_id is None


async def test_csr_whose_signature_does_not_verify_is_rejected(ca_server, raw_ws, cp_id):
    pem = make_csr(cp_id)
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    body = base64.encodebytes(bytes(der)).decode()
    tampered = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, tampered)
    assert answer == [3, mid, {"status": "Rejected"}]
    request = await CertificateSigningRequest.objects.aget(charge_point__charge_point_id=cp_id)
    assert "signature does not verify" in request.reason


async def test_sign_certificate_without_a_configured_ca_is_rejected(raw_ws, cp_id):
    async with raw_ws(cp_id) as ws:
        answer, mid = await request_certificate(ws, make_csr(cp_id))
    assert answer == [3, mid, {"status": "Rejected"}]
    request = await CertificateSigningRequest.objects.aget(charge_point__charge_point_id=cp_id)
    assert "no CA is configured" in request.reason


async def test_csr_longer_than_the_schema_allows_is_a_type_constraint_violation(ca_server, raw_ws, cp_id):
    async with raw_ws(cp_id, server=ca_server) as ws:
        answer, mid = await request_certificate(ws, "A" * 5501)
    assert answer[:3] == [4, mid, "TypeConstraintViolation"]
    assert not await CertificateSigningRequest.objects.filter(charge_point__charge_point_id=cp_id).aexists()
