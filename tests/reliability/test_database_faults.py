"""The database away or locked while charge points charge: answers, then what is stored.

Each test runs real charge points (raw OCPP over WebSockets) against a real daphne,
takes the database away for a while (an exclusive SQLite lock, PostgreSQL stopped,
a file size limit, one row locked), and checks that every CALL got a CALLRESULT or
an InternalError CALLERROR (never a hang), that every acknowledged message is
stored once, that nothing was half-written, and that service resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from tests.reliability.conftest import (
    Ledger,
    Persistence,
    assert_nothing_lost,
    charge,
    stored_against_acknowledged,
)

pytestmark = pytest.mark.django_db(transaction=True)

FAULT_SECONDS = 5


@contextlib.contextmanager
def sqlite_locked(path, seconds: float):
    """An exclusive lock on the SQLite file for ``seconds``, held by another connection."""
    locked = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(seconds)
            db.execute("COMMIT")
        finally:
            db.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(30)
    try:
        yield
    finally:
        thread.join()


@pytest.mark.sqlite
async def test_sqlite_locked_for_five_seconds_loses_nothing_and_service_resumes(
    start_daphne, test_db_path, record
):
    server = start_daphne()
    ledgers = []
    for n in range(4):
        charge_point_id = f"LOCK{n}-{time.time_ns() % 10**9}"
        ledgers.append(await Ledger(charge_point_id, server.ws_url(charge_point_id)).open())
    persistence = Persistence()
    for ledger in ledgers:
        await persistence.send(ledger, "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})

    workload = asyncio.gather(
        *(charge(ledger, persistence, sessions=2, samples=6, pause=0.3) for ledger in ledgers)
    )
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await asyncio.to_thread(_lock, test_db_path)
    await workload
    # Service resumed by itself: an answer comes at once after the lock.
    before = time.monotonic()
    frame = await ledgers[0].call("Heartbeat", {})
    assert frame[0] == 3 and time.monotonic() - before < 5

    figures = await sync_to_async(stored_against_acknowledged)(ledgers)
    for ledger in ledgers:
        await ledger.close()
    record(
        "database_sqlite_locked",
        fault=f"SQLite file locked (BEGIN EXCLUSIVE) for {FAULT_SECONDS} s",
        fault_seconds=round(time.monotonic() - started, 1),
        internal_errors=persistence.internal_errors,
        **figures,
    )
    assert_nothing_lost(figures)


def _lock(path) -> None:
    with sqlite_locked(path, FAULT_SECONDS):
        pass
