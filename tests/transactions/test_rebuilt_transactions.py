"""A StopTransaction for a transaction Levity never saw start (it started while the
server was down) is recorded as a rebuilt transaction, not dropped. Over daphne."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from transactions.models import MeterValue, StoppedBy, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

T_BEGIN = "2025-03-01T09:00:00Z"
T_MIDDLE = "2025-03-01T10:00:00Z"
T_STOP = "2025-03-01T11:30:00Z"
UNKNOWN_ID = 424242

TRANSACTION_DATA = [
    {"timestamp": T_MIDDLE, "sampledValue": [{"value": "4.5", "unit": "kWh"}]},
    {"timestamp": T_BEGIN, "sampledValue": [{"value": "1200", "context": "Transaction.Begin"}]},
    {"timestamp": T_STOP, "sampledValue": [{"value": "8500", "context": "Transaction.End"}]},
]


def stop_frame(unique_id: str, **extra) -> list:
    payload = {
        "transactionId": UNKNOWN_ID,
        "meterStop": 8500,
        "timestamp": T_STOP,
        "idTag": "CARD-9",
        **extra,
    }
    return [2, unique_id, "StopTransaction", payload]


async def test_a_stop_for_an_unknown_transaction_is_rebuilt_from_what_it_carries(
    raw_ws, cp_id, daphne_server
):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(stop_frame("p-1", transactionData=TRANSACTION_DATA, reason="Local"))
    assert answer == [3, "p-1", {"idTagInfo": {"status": "Invalid"}}]
    tx = await Transaction.objects.aget(charge_point__charge_point_id=cp_id)
    assert tx.rebuilt and tx.reported_transaction_id == UNKNOWN_ID
    assert (tx.connector_id, tx.id_tag, tx.id_tag_status) == (0, "CARD-9", "Invalid")
    assert (tx.meter_start, tx.meter_stop, tx.energy_wh) == (1200, 8500, 7300)  # the earliest reading
    assert tx.start_timestamp == datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
    assert tx.stop_timestamp == datetime(2025, 3, 1, 11, 30, tzinfo=timezone.utc)
    assert (tx.stopped_by, tx.stop_reason) == (StoppedBy.CHARGE_POINT, "Local")
    assert await MeterValue.objects.filter(transaction=tx).acount() == 3
    await daphne_server.wait_for_log(f"recorded as rebuilt transaction {tx.pk}")


async def test_a_rebuilt_transaction_without_readings_claims_no_energy(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        await session.exchange(stop_frame("p-1"))
    tx = await Transaction.objects.aget(charge_point__charge_point_id=cp_id)
    assert (tx.meter_start, tx.meter_stop, tx.energy_wh) == (8500, 8500, 0)
    assert tx.start_timestamp == tx.stop_timestamp


async def test_a_resent_stop_for_a_rebuilt_transaction_rebuilds_nothing_more(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        await session.exchange(stop_frame("p-1", transactionData=TRANSACTION_DATA))
    async with raw_ws(cp_id) as session:
        again = await session.exchange(stop_frame("p-2", transactionData=TRANSACTION_DATA))
    assert again[:2] == [3, "p-2"]
    assert await Transaction.objects.filter(charge_point__charge_point_id=cp_id).acount() == 1
    assert await MeterValue.objects.filter(charge_point__charge_point_id=cp_id).acount() == 3


async def test_a_stop_naming_another_charge_points_transaction_leaves_it_alone(raw_ws, cp_id):
    async with raw_ws(f"{cp_id}-owner") as owner:
        answer = await owner.exchange(
            [
                2,
                "s",
                "StartTransaction",
                {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": T_BEGIN},
            ]
        )
    theirs = answer[2]["transactionId"]
    async with raw_ws(cp_id) as session:
        await session.exchange(
            [2, "p", "StopTransaction", {"transactionId": theirs, "meterStop": 50, "timestamp": T_STOP}]
        )
    assert (await Transaction.objects.aget(pk=theirs)).is_active
    rebuilt = await Transaction.objects.aget(charge_point__charge_point_id=cp_id)
    assert rebuilt.rebuilt and rebuilt.reported_transaction_id == theirs and rebuilt.pk != theirs
