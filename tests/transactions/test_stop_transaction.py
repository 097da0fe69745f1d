"""StopTransaction over a real daphne server: exact frames, transaction and meter rows."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import pytest

from transactions.models import IdTag, MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

T_START = "2025-03-01T10:00:00Z"
T_STOP = "2025-03-01T11:30:00Z"


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, 1, hour, minute, tzinfo=timezone.utc)


async def start(session, meter_start: int = 1000, connector_id: int = 1, id_tag: str = "CARD-1"):
    answer = await session.exchange(
        [
            2,
            "start",
            "StartTransaction",
            {
                "connectorId": connector_id,
                "idTag": id_tag,
                "meterStart": meter_start,
                "timestamp": T_START,
            },
        ]
    )
    return answer[2]["transactionId"]


def stop_frame(unique_id: str, transaction_id: int, **overrides) -> list:
    payload = {"transactionId": transaction_id, "meterStop": 8500, "timestamp": T_STOP}
    payload.update(overrides)
    return [2, unique_id, "StopTransaction", payload]


async def test_stop_records_meter_stop_energy_reason_and_time(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(stop_frame("p-1", tx_id, reason="EVDisconnected"))
    assert answer == [3, "p-1", {}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.meter_stop, tx.energy_wh, tx.stop_reason) == (8500, 7500, "EVDisconnected")
    assert tx.stop_timestamp == utc(11, 30)
    assert tx.duration.total_seconds() == 5400
    assert tx.stop_received_at is not None and not tx.is_active
    assert not tx.meter_stop_below_start and not tx.stop_before_start


async def test_stop_without_reason_is_recorded_as_local(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await session.exchange(stop_frame("p-2", tx_id))
    assert (await Transaction.objects.aget(pk=tx_id)).stop_reason == "Local"


async def test_stop_with_id_tag_answers_its_id_tag_info_and_records_it(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1", parent_id_tag="FLEET")
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(stop_frame("p-3", tx_id, idTag="CARD-1"))
    # The tag's own transaction does not make it ConcurrentTx.
    assert answer == [3, "p-3", {"idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}}]
    assert (await Transaction.objects.aget(pk=tx_id)).stop_id_tag == "CARD-1"


async def test_stop_by_unknown_tag_answers_invalid_and_still_stops(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(stop_frame("p-4", tx_id, idTag="STRANGER"))
    assert answer == [3, "p-4", {"idTagInfo": {"status": "Invalid"}}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert tx.stop_id_tag == "STRANGER" and not tx.is_active


async def test_transaction_data_is_stored_and_linked_to_the_transaction(raw_ws, cp_id):
    transaction_data = [
        {
            "timestamp": T_START,
            "sampledValue": [
                {"value": "1000", "context": "Transaction.Begin", "unit": "Wh"},
            ],
        },
        {
            "timestamp": T_STOP,
            "sampledValue": [
                {"value": "8.5", "context": "Transaction.End", "unit": "kWh"},
                {
                    "value": "11040",
                    "context": "Transaction.End",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                },
            ],
        },
    ]
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(stop_frame("p-5", tx_id, transactionData=transaction_data))
    assert answer == [3, "p-5", {}]
    rows = [mv async for mv in MeterValue.objects.filter(transaction_id=tx_id).order_by("id")]
    assert [(r.timestamp, r.value, r.unit, r.context, r.measurand) for r in rows] == [
        (utc(10), "1000", "Wh", "Transaction.Begin", "Energy.Active.Import.Register"),
        (utc(11, 30), "8.5", "kWh", "Transaction.End", "Energy.Active.Import.Register"),
        (utc(11, 30), "11040", "W", "Transaction.End", "Power.Active.Import"),
    ]
    assert [(r.normalized_value, r.normalized_unit) for r in rows] == [
        (1000.0, "Wh"),
        (8500.0, "Wh"),
        (11040.0, "W"),
    ]
    assert all(r.connector_id == 1 for r in rows)


async def test_stop_for_unknown_transaction_is_answered_and_logged(raw_ws, cp_id, daphne_server):
    data = [{"timestamp": T_STOP, "sampledValue": [{"value": "42"}]}]
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(stop_frame("p-6", 987654, transactionData=data))
    assert answer == [3, "p-6", {}]
    # Rebuilt from the stop (tests/transactions/test_rebuilt_transactions.py), its
    # meter values with it.
    tx = await Transaction.objects.aget(reported_transaction_id=987654)
    assert tx.rebuilt
    row = await MeterValue.objects.aget()
    assert row.transaction_id == tx.pk and row.value == "42"
    assert "StopTransaction for unknown transaction 987654" in daphne_server.log()


async def test_stop_for_unknown_transaction_with_id_tag_answers_id_tag_info(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1")
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(stop_frame("p-7", 987655, idTag="CARD-1"))
    assert answer == [3, "p-7", {"idTagInfo": {"status": "Accepted"}}]


async def test_stop_for_already_stopped_transaction_keeps_the_stored_stop(raw_ws, cp_id, daphne_server):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await session.exchange(stop_frame("p-8", tx_id, reason="Local"))
        answer = await session.exchange(
            stop_frame("p-9", tx_id, meterStop=99999, timestamp="2025-03-01T12:00:00Z", reason="Remote")
        )
    assert answer == [3, "p-9", {}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.meter_stop, tx.energy_wh, tx.stop_reason) == (8500, 7500, "Local")
    assert tx.stop_timestamp == utc(11, 30)
    assert f"StopTransaction for transaction {tx_id}, already stopped" in daphne_server.log()


async def test_repeated_stop_transaction_is_answered_without_change(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        first = await session.exchange(stop_frame("p-10", tx_id))
        again = await session.exchange(stop_frame("p-11", tx_id))
    assert (first, again) == ([3, "p-10", {}], [3, "p-11", {}])
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.meter_stop, tx.energy_wh) == (8500, 7500)


async def test_stop_of_another_charge_points_transaction_is_not_applied(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
    async with raw_ws(f"{cp_id}-other") as intruder:
        answer = await intruder.exchange(stop_frame("p-12", tx_id))
    assert answer == [3, "p-12", {}]
    assert (await Transaction.objects.aget(pk=tx_id)).is_active


async def test_meter_stop_below_meter_start_is_flagged_not_stored_as_negative_energy(
    raw_ws, cp_id, daphne_server
):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session, meter_start=5000)
        answer = await session.exchange(stop_frame("p-13", tx_id, meterStop=4000))
    assert answer == [3, "p-13", {}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert tx.meter_stop == 4000 and tx.meter_stop_below_start
    assert tx.energy_wh is None and not tx.is_active
    assert f"Transaction {tx_id}: meterStop 4000 is below meterStart 5000" in daphne_server.log()


async def test_a_stop_timestamped_before_its_start_is_stored_as_reported_and_flagged(
    raw_ws, cp_id, daphne_server
):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session, meter_start=1000)
        answer = await session.exchange(stop_frame("p-14", tx_id, timestamp="2025-03-01T09:59:59Z"))
    assert answer == [3, "p-14", {}]  # acknowledged: its meterStop is billing data
    tx = await Transaction.objects.aget(pk=tx_id)
    assert tx.stop_before_start and tx.stop_timestamp == datetime(2025, 3, 1, 9, 59, 59, tzinfo=timezone.utc)
    assert (tx.meter_stop, tx.energy_wh) == (8500, 7500)
    await daphne_server.wait_for_log(
        f"Transaction {tx_id}: stop timestamp 2025-03-01T09:59:59+00:00 is before"
    )


async def test_stop_without_required_transaction_id_is_a_protocol_error(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        frame = stop_frame("p-14", tx_id)
        del frame[3]["transactionId"]
        answer = await session.exchange(frame)
    assert answer[0:3] == [4, "p-14", "ProtocolError"]
    assert (await Transaction.objects.aget(pk=tx_id)).is_active


async def test_stop_with_reason_outside_the_enumeration_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        answer = await session.exchange(stop_frame("p-15", tx_id, reason="Bored"))
    assert answer[0:3] == [4, "p-15", "PropertyConstraintViolation"]
    assert (await Transaction.objects.aget(pk=tx_id)).is_active


# --- many charge points at once (written in bulk) ----------------------------------------


async def test_stop_transactions_sent_at_once_each_stop_their_own_transaction(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1")
    data = [{"timestamp": T_STOP, "sampledValue": [{"value": "9000", "unit": "Wh"}]}]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(raw_ws(f"{cp_id}-{i}")) for i in range(8)]
        other = await stack.enter_async_context(raw_ws(f"{cp_id}-other"))
        tx_ids = [await start(s, meter_start=100 * i, id_tag=f"TAG-{i}") for i, s in enumerate(sessions)]
        answers = await asyncio.gather(
            *(
                s.exchange(stop_frame("x", tx, meterStop=1000 + i, idTag="CARD-1", transactionData=data))
                for i, (s, tx) in enumerate(zip(sessions, tx_ids, strict=True))
            ),
            other.exchange(stop_frame("unknown", 987654321)),
        )
    assert answers[:8] == [[3, "x", {"idTagInfo": {"status": "Accepted"}}]] * 8
    assert answers[8] == [3, "unknown", {}]
    for i, tx_id in enumerate(tx_ids):
        tx = await Transaction.objects.aget(pk=tx_id)
        assert (tx.meter_stop, tx.energy_wh, tx.stop_id_tag, tx.stop_timestamp) == (
            1000 + i,
            1000 + i - 100 * i,
            "CARD-1",
            utc(11, 30),
        )
        assert [m.value async for m in MeterValue.objects.filter(transaction_id=tx_id)] == ["9000"]
