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

from tests.conftest import eventually
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
        await persistence.send(
            ledger, "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}
        )

    workload = asyncio.gather(
        *(charge(ledger, persistence, sessions=2, samples=6, pause=0.3) for ledger in ledgers)
    )
    await eventually(lambda: any(ledger.answers for ledger in ledgers), what="the first answer")
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


# --- PostgreSQL stopped and restarted; one charge point's slow database work -------


def psycopg_rows(url: str):
    """The row sources of stored_against_acknowledged, read from ``url`` with psycopg."""
    import psycopg

    from chargepoints.models import ChargePoint
    from transactions.models import MeterValue, Transaction

    cps, txs, mvs = (m._meta.db_table for m in (ChargePoint, Transaction, MeterValue))

    def transactions(charge_point_id: str) -> dict:
        with psycopg.connect(url) as db:
            rows = db.execute(
                f'SELECT t.id, t.meter_start, t.meter_stop, t.energy_wh FROM "{txs}" t '
                f'JOIN "{cps}" c ON c.id = t.charge_point_id WHERE c.charge_point_id = %s',
                (charge_point_id,),
            ).fetchall()
        return {row[0]: row[1:] for row in rows}

    def meter_values(charge_point_id: str) -> list:
        with psycopg.connect(url) as db:
            return db.execute(
                f'SELECT m.transaction_id, m.value FROM "{mvs}" m '
                f'JOIN "{cps}" c ON c.id = m.charge_point_id WHERE c.charge_point_id = %s '
                "AND m.measurand = 'Energy.Active.Import.Register'",
                (charge_point_id,),
            ).fetchall()

    return transactions, meter_values


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory):
    """A PostgreSQL server of this module's own (it is stopped and restarted), migrated."""
    import subprocess
    import sys

    from bench.processes import PostgresServer, postgres_bin_dir
    from tests.conftest import PROJECT_DIR, server_env
    from tests.services import unavailable

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed (enable: sudo apt-get install postgresql)")
    server = PostgresServer(bin_dir).start()
    url = server.create_database("levity_faults")
    env = server_env(tmp_path_factory.mktemp("unused") / "unused.sqlite3", DATABASE_URL=url)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    yield server, url
    server.stop()


@pytest.mark.once
async def test_postgresql_stopped_and_restarted_loses_nothing_and_service_resumes(
    own_postgres, start_daphne, record
):
    postgres, url = own_postgres
    server = start_daphne(DATABASE_URL=url, DATABASE_POOL_TIMEOUT="2")
    ledgers = []
    for n in range(4):
        cp = f"PGDOWN{n}-{time.time_ns() % 10**9}"
        ledgers.append(await Ledger(cp, server.ws_url(cp)).open())
    persistence = Persistence(deadline=120)
    workload = asyncio.gather(
        *(charge(ledger, persistence, sessions=2, samples=6, pause=0.3) for ledger in ledgers)
    )
    await eventually(lambda: any(ledger.answers for ledger in ledgers), what="the first answer")
    started = time.monotonic()
    await asyncio.to_thread(postgres.halt)
    await asyncio.sleep(FAULT_SECONDS)
    await asyncio.to_thread(postgres.resume)
    down = time.monotonic() - started
    await asyncio.wait_for(workload, 180)
    frame = await ledgers[0].call("Heartbeat", {})
    assert frame[0] == 3
    for ledger in ledgers:
        await ledger.close()
    figures = await asyncio.to_thread(stored_against_acknowledged, ledgers, *psycopg_rows(url))
    record(
        "database_postgresql_restarted",
        fault="PostgreSQL stopped (fast shutdown) for 5 s, then started again",
        fault_seconds=round(down, 1),
        internal_errors=persistence.internal_errors,
        **figures,
    )
    assert persistence.internal_errors > 0  # the outage was seen, and answered InternalError
    assert_nothing_lost(figures)


#: How long the slow query holds one charge point's transaction row.
SLOW_QUERY_SECONDS = 10
#: The others' charging must be done within this, while the row is still held.
OTHERS_BOUND_SECONDS = 5


@pytest.mark.once
async def test_one_charge_points_slow_database_work_does_not_hold_up_the_others(
    own_postgres, start_daphne, record
):
    import psycopg

    from transactions.models import Transaction

    _, url = own_postgres
    server = start_daphne(DATABASE_URL=url, DATABASE_LOCK_TIMEOUT="0.5", DATABASE_LOCK_RETRY_TIMEOUT="30")
    slow_id = f"SLOW-{time.time_ns() % 10**9}"
    slow = await Ledger(slow_id, server.ws_url(slow_id)).open()
    started = await slow.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": "SLOW", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"},
    )
    transaction_id = started[2]["transactionId"]
    others = []
    for n in range(3):
        cp = f"FAST{n}-{time.time_ns() % 10**9}"
        others.append(await Ledger(cp, server.ws_url(cp)).open())

    table = Transaction._meta.db_table
    persistence = Persistence()
    with psycopg.connect(url) as db:  # the slow query: it holds the row
        db.execute(f'SELECT * FROM "{table}" WHERE id = %s FOR UPDATE', (transaction_id,))
        locked_at = time.monotonic()
        stop_payload = {
            "transactionId": transaction_id,
            "meterStop": 500,
            "timestamp": "2026-01-01T01:00:00Z",
        }
        # The slow charge point's stop, resent after an InternalError, and the others'
        # charging in the same batches.
        stop = asyncio.ensure_future(persistence.send(slow, "StopTransaction", stop_payload))
        workload = asyncio.ensure_future(
            asyncio.gather(*(charge(o, persistence, sessions=1, samples=3) for o in others))
        )
        await asyncio.wait({workload}, timeout=OTHERS_BOUND_SECONDS)
        others_took = time.monotonic() - locked_at
        others_went_on = workload.done()
        # The fault lasts its whole time, whatever the others did.
        await asyncio.sleep(max(0.0, SLOW_QUERY_SECONDS - (time.monotonic() - locked_at)))
        stop_waited = not stop.done()
        db.rollback()
    await asyncio.wait_for(workload, 120)
    answer = await asyncio.wait_for(stop, 120)
    stored_after = time.monotonic() - locked_at
    for ledger in [slow, *others]:
        await ledger.close()
    figures = await asyncio.to_thread(stored_against_acknowledged, [slow, *others], *psycopg_rows(url))
    record(
        "slow_query_one_charge_point",
        fault=f"one charge point's transaction row locked {SLOW_QUERY_SECONDS} s by a slow query",
        others_finished_seconds=round(others_took, 2),
        others_went_on=others_went_on,
        others_bound_seconds=OTHERS_BOUND_SECONDS,
        slow_stored_seconds=round(stored_after, 1),
        internal_errors=persistence.internal_errors,
        **figures,
    )
    assert others_went_on, (
        f"the other charge points waited for the slow one: not done {others_took:.1f} s "
        f"into a {SLOW_QUERY_SECONDS} s lock"
    )
    assert stop_waited, "the slow charge point's stop was answered while its row was still held"
    assert answer[0] == 3, answer  # stored once the row was free, and acknowledged
    assert_nothing_lost(figures)  # its meterStop among them
    assert figures["acknowledged_transactions"] == 4 and figures["lost"] == 0, figures


# --- the disk fills while writing (SQLite) ------------------------------------------


def sqlite_rows(path):
    import sqlite3

    from chargepoints.models import ChargePoint
    from transactions.models import MeterValue, Transaction

    cps, txs, mvs = (m._meta.db_table for m in (ChargePoint, Transaction, MeterValue))

    def query(sql: str, *params):
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def transactions(charge_point_id: str) -> dict:
        rows = query(
            f'SELECT t.id, t.meter_start, t.meter_stop, t.energy_wh FROM "{txs}" t '
            f'JOIN "{cps}" c ON c.id = t.charge_point_id WHERE c.charge_point_id = ?',
            charge_point_id,
        )
        return {row[0]: row[1:] for row in rows}

    def meter_values(charge_point_id: str) -> list:
        return query(
            f'SELECT m.transaction_id, m.value FROM "{mvs}" m '
            f'JOIN "{cps}" c ON c.id = m.charge_point_id WHERE c.charge_point_id = ? '
            "AND m.measurand = 'Energy.Active.Import.Register'",
            charge_point_id,
        )

    return transactions, meter_values


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted on a fresh directory (root only); ``resize(bytes)`` changes its size."""
    import os
    import subprocess

    from tests.services import unavailable

    if os.geteuid() != 0:
        unavailable("the disk-full test mounts a tmpfs: run it as root")
    mount = tmp_path / "disk"
    mount.mkdir()

    def resize(size: int, first: bool = False) -> None:
        options = f"size={size}" if first else f"remount,size={size}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)

    resize.path = mount
    yield resize
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.sqlite
async def test_disk_full_while_writing_answers_internal_error_and_resumes_when_space_returns(
    start_daphne, test_db_path, small_disk, record
):
    import sqlite3

    # A copy of the test database on a disk with 256 kB to spare.
    with contextlib.closing(sqlite3.connect(test_db_path, timeout=30)) as source:
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = test_db_path.stat().st_size
        small_disk(size + 256 * 1024, first=True)
        database = small_disk.path / "levity.sqlite3"
        with contextlib.closing(sqlite3.connect(database)) as copy:
            source.backup(copy)
    server = start_daphne(DATABASE_URL=f"sqlite:///{database}")
    ledgers = []
    for n in range(3):
        cp = f"DISK{n}-{time.time_ns() % 10**9}"
        ledgers.append(await Ledger(cp, server.ws_url(cp)).open())
    persistence = Persistence(deadline=120)
    workload = asyncio.gather(*(charge(ledger, persistence, sessions=3, samples=30) for ledger in ledgers))
    await eventually(lambda: persistence.internal_errors > 0 or workload.done(), timeout=120)
    assert not workload.done(), "the disk never filled"
    filled_at = sum(len(led.answers) for led in ledgers)
    small_disk(size + 64 * 1024 * 1024)  # space comes back
    await asyncio.wait_for(workload, 180)
    assert (await ledgers[0].call("Heartbeat", {}))[0] == 3
    for ledger in ledgers:
        await ledger.close()
    figures = await asyncio.to_thread(stored_against_acknowledged, ledgers, *sqlite_rows(database))
    record(
        "disk_full_sqlite",
        fault="the SQLite database's disk full (256 kB to spare), then space freed",
        answers_before_full=filled_at,
        internal_errors=persistence.internal_errors,
        **figures,
    )
    assert_nothing_lost(figures)
    assert "database or disk is full" in server.log()
