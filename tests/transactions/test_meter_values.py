"""MeterValues over a real daphne server: every sampled value becomes a row."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from transactions.models import MeterValue

pytestmark = pytest.mark.django_db(transaction=True)

T1 = "2025-03-01T10:05:00Z"
T2 = "2025-03-01T10:06:00+01:00"


async def start(session) -> int:
    answer = await session.exchange(
        [
            2,
            "start",
            "StartTransaction",
            {"connectorId": 1, "idTag": "CARD", "meterStart": 0, "timestamp": T1},
        ]
    )
    return answer[2]["transactionId"]


def meter_frame(unique_id: str, meter_value: list, **extra) -> list:
    return [2, unique_id, "MeterValues", {"connectorId": 1, "meterValue": meter_value, **extra}]


async def test_every_sampled_value_of_every_meter_value_is_stored(raw_ws, cp_id):
    meter_value = [
        {
            "timestamp": T1,
            "sampledValue": [
                {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                {"value": "231.0", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
            ],
        },
        {
            "timestamp": T2,
            "sampledValue": [
                {"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                {
                    "value": "31.5",
                    "measurand": "Temperature",
                    "unit": "Celsius",
                    "location": "Body",
                    "context": "Trigger",
                },
            ],
        },
    ]
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(meter_frame("m-1", meter_value, transactionId=tx_id))
    assert answer == [3, "m-1", {}]
    rows = [mv async for mv in MeterValue.objects.order_by("id")]
    assert [(r.measurand, r.value, r.unit, r.phase, r.location, r.context) for r in rows] == [
        ("Energy.Active.Import.Register", "1234", "Wh", "", "Outlet", "Sample.Periodic"),
        ("Power.Active.Import", "7200", "W", "", "Outlet", "Sample.Periodic"),
        ("Current.Import", "16.1", "A", "L1", "Outlet", "Sample.Periodic"),
        ("Voltage", "231.0", "V", "L1-N", "Outlet", "Sample.Periodic"),
        ("SoC", "64", "Percent", "", "EV", "Sample.Periodic"),
        ("Temperature", "31.5", "Celsius", "", "Body", "Trigger"),
    ]
    assert all(r.transaction_id == tx_id and r.connector_id == 1 for r in rows)
    # The charge point's timestamps are kept (as UTC), the receive time beside them.
    assert [r.timestamp for r in rows] == [datetime(2025, 3, 1, 10, 5, tzinfo=timezone.utc)] * 4 + [
        datetime(2025, 3, 1, 9, 6, tzinfo=timezone.utc)
    ] * 2
    assert all(r.received_at is not None for r in rows)


async def test_sampled_value_with_only_a_value_gets_the_1_6_defaults(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        await session.exchange(meter_frame("m-2", [{"timestamp": T1, "sampledValue": [{"value": "5"}]}]))
    row = await MeterValue.objects.aget()
    assert (row.measurand, row.unit, row.context, row.location, row.format, row.phase) == (
        "Energy.Active.Import.Register",
        "Wh",
        "Sample.Periodic",
        "Outlet",
        "Raw",
        "",
    )
    assert (row.normalized_value, row.normalized_unit) == (5.0, "Wh")


async def test_energy_in_kwh_is_normalised_to_wh(raw_ws, cp_id):
    sampled = [
        {"value": "12.345", "unit": "kWh"},
        {"value": "12345", "unit": "Wh"},
        {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"},
    ]
    async with raw_ws(cp_id) as session:
        await session.exchange(meter_frame("m-3", [{"timestamp": T1, "sampledValue": sampled}]))
    rows = [mv async for mv in MeterValue.objects.order_by("id")]
    assert [(r.value, r.unit, r.normalized_value, r.normalized_unit) for r in rows] == [
        ("12.345", "kWh", 12345.0, "Wh"),
        ("12345", "Wh", 12345.0, "Wh"),
        ("7.2", "kW", 7200.0, "W"),
    ]


async def test_measurand_without_unit_gets_its_natural_unit(raw_ws, cp_id):
    sampled = [
        {"value": "230", "measurand": "Voltage"},
        {"value": "16", "measurand": "Current.Import"},
        {"value": "11000", "measurand": "Power.Active.Import"},
    ]
    async with raw_ws(cp_id) as session:
        await session.exchange(meter_frame("m-4", [{"timestamp": T1, "sampledValue": sampled}]))
    assert [mv.unit async for mv in MeterValue.objects.order_by("id")] == ["V", "A", "W"]


async def test_meter_values_without_transaction_are_stored_without_one(raw_ws, cp_id):
    clock_aligned = [{"timestamp": T1, "sampledValue": [{"value": "99", "context": "Sample.Clock"}]}]
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(meter_frame("m-5", clock_aligned))
    assert answer == [3, "m-5", {}]
    row = await MeterValue.objects.select_related("charge_point").aget()
    assert row.transaction_id is None and row.context == "Sample.Clock"
    assert row.charge_point.charge_point_id == cp_id


async def test_meter_values_for_unknown_transaction_are_kept_and_logged(raw_ws, cp_id, daphne_server):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            meter_frame("m-6", [{"timestamp": T1, "sampledValue": [{"value": "1"}]}], transactionId=424242)
        )
    assert answer == [3, "m-6", {}]
    assert (await MeterValue.objects.aget()).transaction_id is None
    assert "MeterValues name unknown transaction 424242" in daphne_server.log()


async def test_signed_data_is_stored_as_sent_without_a_normalised_value(raw_ws, cp_id):
    signed = "A" * 60
    async with raw_ws(cp_id) as session:
        await session.exchange(
            meter_frame(
                "m-7",
                [{"timestamp": T1, "sampledValue": [{"value": signed, "format": "SignedData"}]}],
            )
        )
    row = await MeterValue.objects.aget()
    assert (row.value, row.format, row.normalized_value) == (signed, "SignedData", None)


async def test_meter_values_for_connector_zero_are_the_main_meter(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            [
                2,
                "m-8",
                "MeterValues",
                {
                    "connectorId": 0,
                    "meterValue": [{"timestamp": T1, "sampledValue": [{"value": "7"}]}],
                },
            ]
        )
    assert answer == [3, "m-8", {}]
    assert (await MeterValue.objects.aget()).connector_id == 0


async def test_meter_value_without_timestamp_is_a_protocol_error(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(meter_frame("m-9", [{"sampledValue": [{"value": "1"}]}]))
    assert answer[0:3] == [4, "m-9", "ProtocolError"]
    assert not await MeterValue.objects.aexists()


async def test_unit_outside_the_enumeration_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            meter_frame("m-10", [{"timestamp": T1, "sampledValue": [{"value": "1", "unit": "MWh"}]}])
        )
    assert answer[0:3] == [4, "m-10", "PropertyConstraintViolation"]
    assert not await MeterValue.objects.aexists()
