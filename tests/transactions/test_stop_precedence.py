"""Who stopped a transaction: the charge point's own StopTransaction wins over a stop
the server guessed, and the guess is kept as history. Over a real daphne server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from transactions.models import StoppedBy, SupersededStop, Transaction
from transactions.repositories import TransactionRepository

pytestmark = pytest.mark.django_db(transaction=True)

T_START = "2025-03-01T10:00:00Z"
T_STOP = "2025-03-01T11:30:00Z"


async def start(session) -> int:
    answer = await session.exchange(
        [
            2,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000, "timestamp": T_START},
        ]
    )
    return answer[2]["transactionId"]


def stop_frame(unique_id: str, tx_id: int, meter_stop: int = 8500) -> list:
    return [
        2,
        unique_id,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": meter_stop, "timestamp": T_STOP, "reason": "EVDisconnected"},
    ]


async def test_the_charge_points_stop_replaces_the_servers_and_the_servers_is_kept(
    raw_ws, cp_id, daphne_server
):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        # The server closes it on its own authority (as OrphanedTransactionPlugin does).
        closed_at = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
        assert await TransactionRepository().stop_transaction(
            tx_id, 3000, reason="Other", timestamp=closed_at
        )
        guessed = await Transaction.objects.aget(pk=tx_id)
        assert (guessed.stopped_by, guessed.meter_stop) == (StoppedBy.SERVER, 3000)
        # Then the charge point's real stop arrives.
        answer = await session.exchange(stop_frame("p-1", tx_id))
    assert answer == [3, "p-1", {}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.stopped_by, tx.meter_stop, tx.energy_wh, tx.stop_reason) == (
        StoppedBy.CHARGE_POINT,
        8500,
        7500,
        "EVDisconnected",
    )
    assert tx.stop_timestamp == datetime(2025, 3, 1, 11, 30, tzinfo=timezone.utc)
    [superseded] = [s async for s in SupersededStop.objects.filter(transaction_id=tx_id)]
    assert (superseded.stopped_by, superseded.meter_stop, superseded.energy_wh, superseded.stop_reason) == (
        StoppedBy.SERVER,
        3000,
        2000,
        "Other",
    )
    assert superseded.stop_timestamp == closed_at
    await daphne_server.wait_for_log(f"StopTransaction for transaction {tx_id} replaces the server's stop")


async def test_a_retry_of_the_charge_points_correcting_stop_changes_nothing_more(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await TransactionRepository().stop_transaction(tx_id, 3000)
        await session.exchange(stop_frame("p-1", tx_id))
        await session.exchange(stop_frame("p-2", tx_id))
    assert await SupersededStop.objects.filter(transaction_id=tx_id).acount() == 1
    assert (await Transaction.objects.aget(pk=tx_id)).meter_stop == 8500


async def test_a_second_different_stop_from_the_charge_point_does_not_replace_its_first(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await session.exchange(stop_frame("p-1", tx_id))
        assert await session.exchange(stop_frame("p-2", tx_id, meter_stop=9999)) == [3, "p-2", {}]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.stopped_by, tx.meter_stop) == (StoppedBy.CHARGE_POINT, 8500)
    assert not await SupersededStop.objects.filter(transaction_id=tx_id).aexists()


async def test_a_server_stop_before_a_start_dated_ahead_is_flagged_and_the_charge_points_stop_clears_it(
    raw_ws, cp_id
):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)  # 2025-03-01T10:00:00Z
        closed_at = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)  # the server's clock behind it
        assert await TransactionRepository().stop_transaction(
            tx_id, 3000, reason="Other", timestamp=closed_at
        )
        assert (await Transaction.objects.aget(pk=tx_id)).stop_before_start
        answer = await session.exchange(stop_frame("p-1", tx_id))
    assert answer == [3, "p-1", {}]
    assert not (await Transaction.objects.aget(pk=tx_id)).stop_before_start


async def test_the_server_does_not_close_a_transaction_the_charge_point_stopped(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await session.exchange(stop_frame("p-1", tx_id))
    assert not await TransactionRepository().stop_transaction(tx_id, 3000)
    assert (await Transaction.objects.aget(pk=tx_id)).meter_stop == 8500


async def test_the_api_and_the_admin_show_who_stopped_and_the_superseded_stop(raw_ws, cp_id, api, browser):
    async with raw_ws(cp_id) as session:
        tx_id = await start(session)
        await TransactionRepository().stop_transaction(tx_id, 3000, reason="Other")
        await session.exchange(stop_frame("p-1", tx_id))
    body = (await api.get(f"/transactions/{tx_id}")).json()
    assert (body["stopped_by"], body["rebuilt"], body["meter_stop"]) == ("charge_point", False, 8500)
    page = browser.get(f"/admin/transactions/transaction/{tx_id}/change/")
    assert page.status_code == 200
    assert "superseded stops" in page.text.lower()
    assert "server (closed on its own authority)" in page.text
