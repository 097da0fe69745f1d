"""StartTransaction over a real daphne server: exact frames and transaction rows."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import pytest

from transactions.models import IdTag, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

T0 = "2025-03-01T10:00:00Z"


def start_frame(unique_id: str, **overrides) -> list:
    payload = {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000, "timestamp": T0}
    payload.update(overrides)
    return [2, unique_id, "StartTransaction", payload]


async def test_accepted_tag_starts_a_transaction(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1")
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(start_frame("s-1"))
    tx = await Transaction.objects.select_related("charge_point").aget()
    assert answer == [3, "s-1", {"transactionId": tx.pk, "idTagInfo": {"status": "Accepted"}}]
    assert tx.charge_point.charge_point_id == cp_id
    assert (tx.connector_id, tx.id_tag, tx.id_tag_status) == (1, "CARD-1", "Accepted")
    assert tx.meter_start == 1000
    assert tx.start_timestamp == datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
    assert tx.is_active and tx.meter_stop is None and tx.energy_wh is None


@pytest.mark.parametrize(
    ("tag_status", "expected"),
    [(None, "Invalid"), ("Blocked", "Blocked"), ("Expired", "Expired"), ("Invalid", "Invalid")],
    ids=["unknown", "blocked", "expired", "invalid"],
)
async def test_tag_that_is_not_accepted_still_gets_a_transaction_id(raw_ws, cp_id, tag_status, expected):
    if tag_status:
        await IdTag.objects.acreate(id_tag="CARD-1", status=tag_status)
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(start_frame("s-2"))
    tx = await Transaction.objects.aget()
    assert answer == [3, "s-2", {"transactionId": tx.pk, "idTagInfo": {"status": expected}}]
    assert tx.id_tag_status == expected


async def test_tag_already_charging_elsewhere_gets_concurrent_tx_and_a_transaction_id(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1")
    async with raw_ws(cp_id) as session:
        first = await session.exchange(start_frame("s-3"))
        second = await session.exchange(start_frame("s-4", connectorId=2))
    assert first[2]["idTagInfo"] == {"status": "Accepted"}
    assert second[2]["idTagInfo"] == {"status": "ConcurrentTx"}
    assert second[2]["transactionId"] != first[2]["transactionId"]
    assert await Transaction.objects.acount() == 2


async def test_repeated_start_transaction_returns_the_same_transaction(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1")
    async with raw_ws(cp_id) as session:
        first = await session.exchange(start_frame("s-5"))
        # The charge point lost the answer and sends the same message again.
        again = await session.exchange(start_frame("s-6"))
    assert again == [3, "s-6", first[2]]
    assert first[2]["idTagInfo"] == {"status": "Accepted"}  # not ConcurrentTx with itself
    assert await Transaction.objects.acount() == 1


async def test_repeated_start_transaction_after_reconnect_returns_the_same_transaction(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        first = await session.exchange(start_frame("s-7"))
    async with raw_ws(cp_id) as session:
        again = await session.exchange(start_frame("s-8"))
    assert again[2]["transactionId"] == first[2]["transactionId"]
    assert await Transaction.objects.acount() == 1


async def test_start_transaction_differing_in_meter_start_is_a_new_transaction(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        first = await session.exchange(start_frame("s-9"))
        other = await session.exchange(start_frame("s-10", meterStart=1001))
    assert other[2]["transactionId"] != first[2]["transactionId"]
    assert await Transaction.objects.acount() == 2


async def test_start_transaction_keeps_reservation_id(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        await session.exchange(start_frame("s-11", reservationId=77))
    assert (await Transaction.objects.aget()).reservation_id == 77


async def test_start_transaction_on_connector_zero_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(start_frame("s-12", connectorId=0))
    assert answer == [
        4,
        "s-12",
        "PropertyConstraintViolation",
        "connectorId 0 is not a valid connector",
        {"field": "connectorId"},
    ]
    assert not await Transaction.objects.aexists()


async def test_start_transaction_with_bad_timestamp_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(start_frame("s-13", timestamp="yesterday"))
        assert answer[0:3] == [4, "s-13", "PropertyConstraintViolation"]
        assert answer[4]["field"] == "timestamp"
    assert not await Transaction.objects.aexists()


async def test_start_transaction_without_id_tag_is_a_protocol_error(raw_ws, cp_id):
    frame = start_frame("s-14")
    del frame[3]["idTag"]
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(frame)
    assert answer[0:3] == [4, "s-14", "ProtocolError"]
    assert not await Transaction.objects.aexists()


async def test_start_transaction_with_meter_start_as_string_is_a_type_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(start_frame("s-15", meterStart="1000"))
    assert answer[0:3] == [4, "s-15", "TypeConstraintViolation"]
    assert answer[4]["field"] == "meterStart"
    assert not await Transaction.objects.aexists()


# --- many charge points at once (written in bulk) ----------------------------------------


async def test_start_transactions_sent_at_once_each_get_their_own_transaction(raw_ws, cp_id):
    await IdTag.objects.abulk_create([IdTag(id_tag=f"BULK-{i}") for i in range(12)])
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(raw_ws(f"{cp_id}-{i}")) for i in range(12)]
        answers = await asyncio.gather(
            *(s.exchange(start_frame("s", idTag=f"BULK-{i}", meterStart=i)) for i, s in enumerate(sessions))
        )
    rows = {
        tx.pk: (tx.charge_point.charge_point_id, tx.id_tag, tx.meter_start)
        async for tx in Transaction.objects.select_related("charge_point")
    }
    assert len(rows) == 12
    for i, answer in enumerate(answers):
        assert answer[2]["idTagInfo"] == {"status": "Accepted"}
        assert rows[answer[2]["transactionId"]] == (f"{cp_id}-{i}", f"BULK-{i}", i)


async def test_one_tag_started_on_two_charge_points_at_once_is_concurrent_on_one_of_them(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="SHARED")
    async with raw_ws(f"{cp_id}-a") as a, raw_ws(f"{cp_id}-b") as b:
        answers = await asyncio.gather(
            a.exchange(start_frame("s", idTag="SHARED")), b.exchange(start_frame("s", idTag="SHARED"))
        )
    statuses = sorted(answer[2]["idTagInfo"]["status"] for answer in answers)
    assert statuses == ["Accepted", "ConcurrentTx"]
    assert await Transaction.objects.acount() == 2


async def test_a_retried_start_sent_with_new_ones_gets_its_first_transaction(raw_ws, cp_id):
    await IdTag.objects.abulk_create([IdTag(id_tag="RETRY"), IdTag(id_tag="NEW-1"), IdTag(id_tag="NEW-2")])
    async with raw_ws(f"{cp_id}-r") as retrying:
        first = await retrying.exchange(start_frame("s-1", idTag="RETRY"))
        async with raw_ws(f"{cp_id}-n1") as n1, raw_ws(f"{cp_id}-n2") as n2:
            again, new_1, new_2 = await asyncio.gather(
                retrying.exchange(start_frame("s-2", idTag="RETRY")),
                n1.exchange(start_frame("s", idTag="NEW-1")),
                n2.exchange(start_frame("s", idTag="NEW-2")),
            )
    assert again == [3, "s-2", first[2]]
    ids = {first[2]["transactionId"], new_1[2]["transactionId"], new_2[2]["transactionId"]}
    assert len(ids) == 3
    assert await Transaction.objects.acount() == 3
