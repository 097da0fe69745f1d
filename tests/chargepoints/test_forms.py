"""The admin's security-extension command forms build payloads their OCPP 1.6 schemas accept."""

from __future__ import annotations

import pytest

from chargepoints.forms import OPERATIONS
from chargepoints.session.commands import validate_command

from .pki import self_signed_pem

pytestmark = pytest.mark.once  # no database at all


PEM = self_signed_pem("forms test")

CASES = {
    "certificate-signed": ({"certificate_chain": PEM}, {"certificateChain": PEM}),
    "install-certificate": (
        {
            "certificate_type": "ManufacturerRootCertificate",
            "certificate": PEM.replace("\n", "\r\n"),
        },
        {"certificateType": "ManufacturerRootCertificate", "certificate": PEM},
    ),
    "get-installed-certificate-ids": (
        {"certificate_type": "CentralSystemRootCertificate"},
        {"certificateType": "CentralSystemRootCertificate"},
    ),
    "delete-certificate": (
        {
            "hash_algorithm": "SHA384",
            "issuer_name_hash": "aa",
            "issuer_key_hash": "bb",
            "serial_number": "0c",
        },
        {
            "certificateHashData": {
                "hashAlgorithm": "SHA384",
                "issuerNameHash": "aa",
                "issuerKeyHash": "bb",
                "serialNumber": "0c",
            }
        },
    ),
    "extended-trigger-message": (
        {"requested_message": "SignChargePointCertificate", "connector_id": ""},
        {"requestedMessage": "SignChargePointCertificate"},
    ),
    "get-log": (
        {
            "log_type": "DiagnosticsLog",
            "request_id": "2",
            "remote_location": "ftp://logs/",
            "latest_timestamp": "2025-02-01 12:30:00",
            "retries": "3",
            "retry_interval": "60",
        },
        {
            "logType": "DiagnosticsLog",
            "requestId": 2,
            "log": {
                "remoteLocation": "ftp://logs/",
                "latestTimestamp": "2025-02-01T12:30:00.000Z",
            },
            "retries": 3,
            "retryInterval": 60,
        },
    ),
    "signed-update-firmware": (
        {
            "request_id": "6",
            "location": "https://fw/x.bin",
            "retrieve_date_time": "2025-02-01 00:00:00",
            "signing_certificate": PEM,
            "signature": "c2ln",
        },
        {
            "requestId": 6,
            "firmware": {
                "location": "https://fw/x.bin",
                "retrieveDateTime": "2025-02-01T00:00:00.000Z",
                "signingCertificate": PEM,
                "signature": "c2ln",
            },
        },
    ),
}


@pytest.mark.parametrize("operation", sorted(CASES))
def test_security_extension_form_builds_a_valid_payload(operation):
    data, payload = CASES[operation]
    form = OPERATIONS[operation](data)
    assert form.is_valid(), form.errors
    assert form.payload() == payload
    validate_command(form.action, form.payload())  # raises if the schema refuses it


@pytest.mark.parametrize("operation", ["certificate-signed", "signed-update-firmware"])
def test_a_certificate_field_that_is_not_pem_is_refused(operation):
    data = dict(CASES[operation][0])
    field = "certificate_chain" if operation == "certificate-signed" else "signing_certificate"
    data[field] = "not a certificate"
    form = OPERATIONS[operation](data)
    assert not form.is_valid()
    assert "Paste PEM certificate(s)" in form.errors[field][0]
