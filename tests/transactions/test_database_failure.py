"""A database failure answers InternalError and never invents a transaction id.

The transactions table is taken away from under the running server (renamed from a
separate connection, sqlite3 or psycopg) for the duration of one call, then put back.
"""

from __future__ import annotations

import contextlib
import sqlite3

import psycopg
import pytest

from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = Transaction._meta.db_table


@pytest.fixture
def table_unavailable(test_database_url, test_db_path):
    """A context manager: the table renamed away while it is open."""

    def execute(sql: str) -> None:
        if test_database_url.startswith("sqlite:"):
            with contextlib.closing(sqlite3.connect(test_db_path, timeout=20)) as db:
                db.execute(sql)
                db.commit()
        else:
            with psycopg.connect(test_database_url, autocommit=True) as db:
                db.execute(sql)

    @contextlib.contextmanager
    def unavailable(table: str):
        execute(f'ALTER TABLE "{table}" RENAME TO "{table}_away"')
        try:
            yield
        finally:
            execute(f'ALTER TABLE "{table}_away" RENAME TO "{table}"')

    return unavailable


START = {"connectorId": 1, "idTag": "CARD", "meterStart": 0, "timestamp": "2025-03-01T10:00:00Z"}


async def test_start_transaction_during_database_failure_answers_internal_error(
    raw_ws, cp_id, table_unavailable, daphne_server
):
    async with raw_ws(cp_id) as session:
        await session.exchange([2, "hb", "Heartbeat", {}])
        with table_unavailable(TABLE):
            answer = await session.exchange([2, "x-1", "StartTransaction", START])
        assert answer == [
            4,
            "x-1",
            "InternalError",
            "StartTransaction could not be processed",
            {},
        ]
        assert not await Transaction.objects.aexists()
        # Once the database is back, the same session carries on.
        retry = await session.exchange([2, "x-2", "StartTransaction", START])
    tx = await Transaction.objects.aget()
    assert retry == [3, "x-2", {"transactionId": tx.pk, "idTagInfo": {"status": "Invalid"}}]
    assert f"{cp_id}: StartTransaction x-1 failed" in daphne_server.log()


async def test_stop_transaction_during_database_failure_answers_internal_error(
    raw_ws, cp_id, table_unavailable
):
    async with raw_ws(cp_id) as session:
        started = await session.exchange([2, "x-3", "StartTransaction", START])
        tx_id = started[2]["transactionId"]
        stop = {"transactionId": tx_id, "meterStop": 500, "timestamp": "2025-03-01T11:00:00Z"}
        with table_unavailable(TABLE):
            answer = await session.exchange([2, "x-4", "StopTransaction", stop])
        assert answer[0:3] == [4, "x-4", "InternalError"]
        assert (await Transaction.objects.aget(pk=tx_id)).is_active
        # The charge point retries its queued StopTransaction later: it is applied.
        assert await session.exchange([2, "x-5", "StopTransaction", stop]) == [3, "x-5", {}]
    assert (await Transaction.objects.aget(pk=tx_id)).energy_wh == 500


async def test_meter_values_during_database_failure_answer_internal_error(raw_ws, cp_id, table_unavailable):
    payload = {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2025-03-01T10:00:00Z", "sampledValue": [{"value": "1"}]}],
    }
    async with raw_ws(cp_id) as session:
        with table_unavailable(MeterValue._meta.db_table):
            answer = await session.exchange([2, "x-6", "MeterValues", payload])
        assert answer[0:3] == [4, "x-6", "InternalError"]
        assert await session.exchange([2, "x-7", "MeterValues", payload]) == [3, "x-7", {}]
    assert await MeterValue.objects.acount() == 1
