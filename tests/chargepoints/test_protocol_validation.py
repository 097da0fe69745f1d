"""Schema validation: Levity's compiled validators decide as fastjsonschema's own do, faster."""

from __future__ import annotations

import fastjsonschema
import pytest

from chargepoints.ocpp16 import protocol

pytestmark = pytest.mark.once  # no database at all

UNITS = ["Wh", "kWh", "varh", "W", "A", "V", "Celsius", "Percent"]
SCHEMA = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": UNITS},
        "anything": {"enum": ["Raw", 1, None]},
    },
}
CANDIDATES = [*UNITS, "MWh", "", "wh", 1, 1.0, True, None, ["Wh"], {"Wh": 1}]


def outcome(validate, payload: dict) -> tuple[str | None, str] | None:
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.rule, exc.message
    return None


@pytest.mark.parametrize("value", CANDIDATES, ids=repr)
def test_a_string_enum_decides_as_fastjsonschema_does(value):
    ours = protocol._compile(SCHEMA, {})
    theirs = fastjsonschema.compile(SCHEMA)
    assert outcome(ours, {"unit": value}) == outcome(theirs, {"unit": value})


@pytest.mark.parametrize("value", CANDIDATES, ids=repr)
def test_an_enum_of_mixed_types_decides_as_fastjsonschema_does(value):
    ours = protocol._compile(SCHEMA, {})
    theirs = fastjsonschema.compile(SCHEMA)
    assert outcome(ours, {"anything": value}) == outcome(theirs, {"anything": value})


def test_a_unit_outside_the_enumeration_is_named_in_the_error():
    with pytest.raises(protocol.PropertyConstraintViolationError) as caught:
        protocol.validate(
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": "2026-01-01T10:00:00Z", "sampledValue": [{"value": "1", "unit": "MWh"}]}
                ],
            },
        )
    assert caught.value.details["field"] == "meterValue[0].sampledValue[0].unit"
    assert "must be one of" in caught.value.description


def test_validators_compiled_at_start_up_are_the_ones_messages_use():
    protocol._validator.cache_clear()
    protocol.compile_validators(["Heartbeat", "NoSuchAction"], lenient=False)
    assert protocol._validator.cache_info().currsize == 1
    protocol.validate("Heartbeat", {})
    assert protocol._validator.cache_info().hits == 1
    assert protocol._validator.cache_info().currsize == 1


def test_the_actions_compiled_at_start_up_are_those_a_charge_point_sends():
    from chargepoints.ocpp16.session import LevityChargePoint

    assert LevityChargePoint.answered_actions() == {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        # The security extension (chargepoints.ocpp16.security).
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
    assert all(type(action) is str for action in LevityChargePoint.answered_actions())
