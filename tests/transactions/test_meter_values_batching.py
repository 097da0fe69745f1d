"""MeterValues from many charge points at once: stored in shared batches, nothing lost or mixed up.

Over a real daphne server: the answers are CALLRESULTs only once the rows are
committed, and one message's bad content never costs the others their rows.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)


def meter_values_frame(unique_id: str, transaction_id: int | None, energy: int, timestamp: str) -> list:
    payload = {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": timestamp,
                "sampledValue": [
                    {"value": str(energy), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                ],
            }
        ],
    }
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return [2, unique_id, "MeterValues", payload]


@contextlib.asynccontextmanager
async def sessions_of(raw_ws, charge_point_ids: list[str]):
    """Several raw OCPP sessions open at once."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(raw_ws(cp)) for cp in charge_point_ids]


async def start(raw, transaction_tag: str) -> int:
    answer = await raw.exchange(
        [
            2,
            "start",
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": transaction_tag,
                "meterStart": 0,
                "timestamp": "2026-01-01T10:00:00Z",
            },
        ]
    )
    return answer[2]["transactionId"]


async def test_meter_values_sent_at_once_by_many_charge_points_are_all_stored(raw_ws, cp_id):
    charge_points = 12
    rounds = 5
    async with sessions_of(raw_ws, [f"{cp_id}-{i}" for i in range(charge_points)]) as sessions:
        tx_ids = await asyncio.gather(*(start(raw, f"TAG{i}") for i, raw in enumerate(sessions)))

        async def send_rounds(raw, tx_id):
            answers = []
            for k in range(rounds):
                answers.append(
                    await raw.exchange(
                        meter_values_frame(f"mv{k}", tx_id, 100 * k, f"2026-01-01T10:05:0{k}Z")
                    )
                )
            return answers

        all_answers = await asyncio.gather(
            *(send_rounds(raw, tx) for raw, tx in zip(sessions, tx_ids, strict=True))
        )
    for answers in all_answers:
        assert answers == [[3, f"mv{k}", {}] for k in range(rounds)]
    for i, tx_id in enumerate(tx_ids):
        rows = [
            (m.measurand, m.value, m.normalized_value, m.normalized_unit)
            async for m in MeterValue.objects.filter(transaction_id=tx_id).order_by("id")
        ]
        assert len(rows) == rounds * 3
        assert rows[:3] == [
            ("Energy.Active.Import.Register", "0", 0.0, "Wh"),
            ("Power.Active.Import", "7.2", 7200.0, "W"),
            ("Current.Import", "16.0", 16.0, "A"),
        ]
        tx = await Transaction.objects.select_related("charge_point").aget(pk=tx_id)
        assert tx.charge_point.charge_point_id == f"{cp_id}-{i}"
        first = await MeterValue.objects.filter(transaction_id=tx_id).afirst()
        assert first.timestamp.isoformat() == "2026-01-01T10:05:00+00:00"


async def test_a_meter_values_message_with_an_impossible_date_is_refused_and_others_in_its_batch_are_stored(
    raw_ws, cp_id
):
    async with sessions_of(raw_ws, [f"{cp_id}-{i}" for i in range(6)]) as sessions:
        tx_ids = await asyncio.gather(*(start(raw, f"TAG{i}") for i, raw in enumerate(sessions)))
        frames = [
            meter_values_frame("mv", tx, 10, "2026-13-45T10:05:00Z" if i == 0 else "2026-01-01T10:05:00Z")
            for i, tx in enumerate(tx_ids)
        ]
        answers = await asyncio.gather(*(raw.exchange(f) for raw, f in zip(sessions, frames, strict=True)))
    assert answers[0][:3] == [4, "mv", "PropertyConstraintViolation"]
    assert all(a == [3, "mv", {}] for a in answers[1:])
    assert await MeterValue.objects.filter(transaction_id=tx_ids[0]).acount() == 0
    for tx_id in tx_ids[1:]:
        assert await MeterValue.objects.filter(transaction_id=tx_id).acount() == 3


async def test_meter_values_naming_another_charge_points_transaction_are_stored_without_it(raw_ws, cp_id):
    async with raw_ws(f"{cp_id}-owner") as owner, raw_ws(f"{cp_id}-other") as other:
        tx_id = await start(owner, "TAGX")
        answer = await other.exchange(meter_values_frame("mv", tx_id, 10, "2026-01-01T10:05:00Z"))
    assert answer == [3, "mv", {}]
    assert await MeterValue.objects.filter(transaction_id=tx_id).acount() == 0
    stored = [
        m.transaction_id
        async for m in MeterValue.objects.filter(charge_point__charge_point_id=f"{cp_id}-other")
    ]
    assert stored == [None, None, None]
