"""The one write path (chargepoints.session.writer): batches, drops and errors."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chargepoints.db import insert_rows
from chargepoints.models import ChargePoint, StatusNotification
from chargepoints.session import writer

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


class Owner:
    accepts_writes = True


def store_status(charge_point_pk: int, status: str) -> int:
    return StatusNotification.objects.create(
        charge_point_id=charge_point_pk, connector_id=1, status=status, received_at=T0
    ).pk


async def hold_the_database_thread() -> tuple[asyncio.Future, threading.Event]:
    """A batch that runs until the returned event is set; later requests queue behind it."""
    release, running = threading.Event(), threading.Event()

    def block() -> None:
        running.set()
        release.wait(30)

    blocking = asyncio.ensure_future(writer.run(block))
    await asyncio.get_running_loop().run_in_executor(None, running.wait, 30)
    return blocking, release


async def test_a_request_of_a_session_that_ended_before_its_batch_is_dropped_not_written():
    cp = await ChargePoint.objects.acreate(charge_point_id="writer-ended")
    session = Owner()
    blocking, release = await hold_the_database_thread()
    queued = asyncio.ensure_future(writer.run_for(session, store_status, cp.pk, "Available"))
    await asyncio.sleep(0)
    session.accepts_writes = False  # the session ends while its request waits
    release.set()
    await blocking
    with pytest.raises(writer.Dropped):
        await queued
    assert not await StatusNotification.objects.filter(charge_point=cp).aexists()


async def test_a_request_of_a_live_session_is_written():
    cp = await ChargePoint.objects.acreate(charge_point_id="writer-live")
    pk = await writer.run_for(Owner(), store_status, cp.pk, "Available")
    assert await StatusNotification.objects.filter(pk=pk, charge_point=cp).aexists()


async def test_requests_failing_in_one_batch_each_get_their_own_error():
    def refuse(name: str) -> None:
        raise ValueError(f"refused {name}")

    blocking, release = await hold_the_database_thread()
    first = asyncio.ensure_future(writer.run(refuse, "first"))
    second = asyncio.ensure_future(writer.run(refuse, "second"))
    await asyncio.sleep(0)
    release.set()
    await blocking
    errors = await asyncio.gather(first, second, return_exceptions=True)
    assert [str(e) for e in errors] == ["refused first", "refused second"]


async def test_a_batch_that_fails_as_a_whole_gives_each_waiter_its_own_error(monkeypatch):
    cause = RuntimeError("database thread gone")

    def fail(items):
        raise cause

    monkeypatch.setattr(writer, "_write_in_thread", fail)
    errors = await asyncio.gather(
        writer.run(store_status, 1, "A"), writer.run(store_status, 1, "B"), return_exceptions=True
    )
    assert all(isinstance(e, writer.BatchFailed) and e.__cause__ is cause for e in errors)
    assert errors[0] is not errors[1]


async def test_the_writes_run_on_levitys_own_thread_not_asgirefs():
    names = await asyncio.gather(writer.run(lambda: threading.current_thread().name), writer.run(lambda: 1))
    assert names[0].startswith("levity-db")


def test_insert_rows_refuses_a_key_that_names_no_field():
    cp = ChargePoint.objects.create(charge_point_id="writer-typo")
    with pytest.raises(TypeError, match="StatusNotification has no field statsu"):
        insert_rows(
            StatusNotification,
            [{"charge_point_id": cp.pk, "connector_id": 1, "statsu": "x", "received_at": T0}],
        )
    assert not StatusNotification.objects.filter(charge_point=cp).exists()


# --- a request blocked on a row lock (PostgreSQL), and SQLite's one writer -------------


def hold_row(charge_point_pk: int, locked: threading.Event, release: threading.Event) -> None:
    """An outside transaction (a slow query) holding a charge point's row until ``release``."""
    from django.db import connection, transaction

    try:
        with transaction.atomic():
            ChargePoint.objects.select_for_update().get(pk=charge_point_pk)
            locked.set()
            release.wait(30)
    finally:
        connection.close()


def rename(charge_point_pk: int, firmware: str, order: list[str]) -> None:
    ChargePoint.objects.filter(pk=charge_point_pk).update(firmware_version=firmware)
    order.append(firmware)


def store_status_in_order(charge_point_pk: int, status: str, order: list[str]) -> None:
    store_status(charge_point_pk, status)
    order.append(status)


@pytest.fixture
def held_row(settings):
    """Start holding a row: ``hold(pk)``; released at the end of the test (or by ``release``)."""
    settings.DATABASE_LOCK_TIMEOUT = 0.2
    threads, release = [], threading.Event()

    def hold(charge_point_pk: int) -> threading.Event:
        locked = threading.Event()
        thread = threading.Thread(target=hold_row, args=(charge_point_pk, locked, release))
        thread.start()
        threads.append(thread)
        assert locked.wait(30)
        return release

    yield hold
    release.set()
    for thread in threads:
        thread.join(30)


@pytest.mark.postgresql
async def test_a_request_blocked_on_a_row_lock_leaves_the_batch_and_is_written_once_the_row_is_free(
    held_row,
):
    slow_cp = await ChargePoint.objects.acreate(charge_point_id="writer-locked")
    other_cp = await ChargePoint.objects.acreate(charge_point_id="writer-free")
    session, order = Owner(), []
    release = await asyncio.to_thread(held_row, slow_cp.pk)
    blocked = asyncio.ensure_future(writer.run_for(session, rename, slow_cp.pk, "first", order))
    other = asyncio.ensure_future(writer.run(store_status, other_cp.pk, "Available"))
    # The others' batch commits while the row is still held.
    assert await asyncio.wait_for(other, 20)
    # The blocked request's session's next write (one the lock does not block) follows
    # it, in order, not past it.
    follower = asyncio.ensure_future(
        writer.run_for(session, store_status_in_order, other_cp.pk, "Charging", order)
    )
    await asyncio.sleep(0.5)  # longer than DATABASE_LOCK_TIMEOUT: a retry that did not wait would be done
    assert not blocked.done() and not follower.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(blocked, follower), 30)
    assert order == ["first", "Charging"]
    assert (await ChargePoint.objects.aget(pk=slow_cp.pk)).firmware_version == "first"


@pytest.mark.postgresql
async def test_a_request_still_blocked_after_the_retry_wait_gets_its_own_lock_timeout(held_row, settings):
    from django.db import OperationalError

    settings.DATABASE_LOCK_RETRY_TIMEOUT = 0.5
    cp = await ChargePoint.objects.acreate(charge_point_id="writer-locked-long")
    await asyncio.to_thread(held_row, cp.pk)
    with pytest.raises(OperationalError) as caught:
        await asyncio.wait_for(writer.run_for(Owner(), rename, cp.pk, "never", []), 20)
    assert writer.waited_too_long_for_a_lock(caught.value)
    assert (await ChargePoint.objects.aget(pk=cp.pk)).firmware_version == ""


@pytest.mark.sqlite
async def test_on_sqlite_a_write_waits_for_the_whole_databases_lock_its_busy_timeout(test_db_path, settings):
    import sqlite3
    import time

    settings.DATABASE_LOCK_TIMEOUT = 0.2  # PostgreSQL's: not SQLite's rule
    cp = await ChargePoint.objects.acreate(charge_point_id="writer-sqlite-locked")
    outside = sqlite3.connect(test_db_path, timeout=30, isolation_level=None)
    outside.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        write = asyncio.ensure_future(writer.run(store_status, cp.pk, "Available"))
        await asyncio.sleep(1.0)  # the lock held a while: the write waits, it does not fail
        assert not write.done()
    finally:
        outside.execute("COMMIT")
        outside.close()
    assert await asyncio.wait_for(write, 30)
    assert time.monotonic() - started >= 1.0


def test_a_batch_whose_writes_all_succeed_sets_no_savepoint():
    cp = ChargePoint.objects.create(charge_point_id="writer-no-savepoint")
    other = writer.Write(lambda pks: [store_status(pk, "Charging") for pk in pks])
    with CaptureQueriesContext(connection) as queries:
        results = writer.write_batch(
            [(writer.calls, (store_status, (cp.pk, "Available"), {})), (other, cp.pk)]
        )
    assert all(isinstance(result, int) for result in results)
    assert not [q["sql"] for q in queries if "SAVEPOINT" in q["sql"].upper()]
    assert StatusNotification.objects.filter(charge_point=cp).count() == 2


def test_when_one_kind_fails_the_batch_is_written_again_and_the_others_rows_stored_once():
    cp = ChargePoint.objects.create(charge_point_id="writer-redo")

    def refuse(pks: list[int]) -> list:
        raise ValueError("refused")

    refused = writer.Write(refuse)
    results = writer.write_batch(
        [
            (writer.calls, (store_status, (cp.pk, "Available"), {})),
            (refused, cp.pk),
            (writer.calls, (store_status, (cp.pk, "Charging"), {})),
        ]
    )
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], ValueError)
    stored = StatusNotification.objects.filter(charge_point=cp)
    assert sorted(stored.values_list("status", flat=True)) == ["Available", "Charging"]
    assert set(stored.values_list("pk", flat=True)) == {results[0], results[2]}
