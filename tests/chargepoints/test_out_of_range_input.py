"""Integers beyond OCPP 1.6's 32-bit type and timestamps beyond Python's date range,
over a real daphne server: a constraint-violation CALLERROR, never InternalError."""

from __future__ import annotations

import pytest

from chargepoints.ocpp16 import protocol
from transactions.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True)

T = "2025-03-01T10:00:00Z"
START = {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000, "timestamp": T}


@pytest.mark.parametrize(
    "action, payload, field",
    [
        ("StartTransaction", {**START, "connectorId": 2**31}, "connectorId"),
        ("StartTransaction", {**START, "connectorId": 2**64}, "connectorId"),  # a float once parsed
        ("StartTransaction", {**START, "meterStart": 2**31}, "meterStart"),
        ("StartTransaction", {**START, "meterStart": -(2**31) - 1}, "meterStart"),
        ("StartTransaction", {**START, "reservationId": 10**20}, "reservationId"),
        ("StopTransaction", {"transactionId": 2**31, "meterStop": 1, "timestamp": T}, "transactionId"),
        ("StopTransaction", {"transactionId": 1, "meterStop": 2**63, "timestamp": T}, "meterStop"),
        (
            "MeterValues",
            {"connectorId": 2**40, "meterValue": [{"timestamp": T, "sampledValue": [{"value": "1"}]}]},
            "connectorId",
        ),
        (
            "StatusNotification",
            {"connectorId": 2**31, "errorCode": "NoError", "status": "Available"},
            "connectorId",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_an_integer_beyond_32_bits_gets_type_constraint_violation(
    raw_ws, cp_id, daphne_server, action, payload, field
):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "big", action, payload])
        heartbeat = await session.exchange([2, "hb", "Heartbeat", {}])
    assert heartbeat[:2] == [3, "hb"]  # the session lives on
    assert answer[:3] == [4, "big", "TypeConstraintViolation"]
    assert answer[4]["field"] == field
    assert "32-bit" in answer[3]
    assert "OverflowError" not in daphne_server.log()
    assert not await Transaction.objects.filter(charge_point__charge_point_id=cp_id).aexists()


async def test_the_largest_32_bit_values_are_accepted(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "max", "StartTransaction", {**START, "meterStart": 2**31 - 1}])
    assert answer[0] == 3
    tx = await Transaction.objects.aget(pk=answer[2]["transactionId"])
    assert tx.meter_start == 2**31 - 1


@pytest.mark.parametrize(
    "timestamp", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"], ids=["9999-west", "0001-east"]
)
@pytest.mark.parametrize("action", ["StatusNotification", "StartTransaction", "MeterValues"])
async def test_a_timestamp_outside_the_utc_range_gets_property_constraint_violation(
    raw_ws, cp_id, daphne_server, action, timestamp
):
    payload = {
        "StatusNotification": {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": timestamp,
        },
        "StartTransaction": {**START, "timestamp": timestamp},
        "MeterValues": {
            "connectorId": 1,
            "meterValue": [{"timestamp": timestamp, "sampledValue": [{"value": "1"}]}],
        },
    }[action]
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "far", action, payload])
        heartbeat = await session.exchange([2, "hb", "Heartbeat", {}])
    assert answer[:3] == [4, "far", "PropertyConstraintViolation"]
    assert "outside the range" in answer[3]
    assert heartbeat[:2] == [3, "hb"]
    assert "OverflowError" not in daphne_server.log()


def test_every_integer_of_every_1_6_schema_is_bounded_to_32_bits():
    """Requests and responses: each integer field refuses 2**31 and takes 2**31 - 1."""
    import json

    checked = 0
    for path in sorted(protocol.SCHEMA_DIR.glob("*.json")):
        schema = protocol._bound_integers(json.loads(path.read_text(encoding="utf-8-sig")))

        def walk(node):
            nonlocal checked
            if isinstance(node, dict):
                if node.get("type") == "integer":
                    assert (node["minimum"], node["maximum"]) == (protocol.INT32_MIN, protocol.INT32_MAX)
                    checked += 1
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
    assert checked > 40
    with pytest.raises(protocol.TypeConstraintViolationError):
        protocol.validate(
            "ReserveNow", {"connectorId": 1, "expiryDate": T, "idTag": "A", "reservationId": 2**31}
        )
    with pytest.raises(protocol.TypeConstraintViolationError):
        protocol.validate(
            "StartTransaction", {"idTagInfo": {"status": "Accepted"}, "transactionId": 2**31}, response=True
        )
