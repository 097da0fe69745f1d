"""The server checkpoints SQLite's write-ahead log from a thread of its own.

What is checkpointed is in the database file itself; what is not is only in the log.
Reading the file with ``immutable=1`` (which ignores the log) tells the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from levity_site import sqlite
from tests.conftest import PROJECT_DIR, DaphneServer, eventually, server_env
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.sqlite


@pytest.fixture
def fresh_database(tmp_path) -> Path:
    """A migrated SQLite file of its own (the suite's shared one is checkpointed by its server)."""
    path = tmp_path / "levity.sqlite3"
    env = server_env(path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        capture_output=True,
    )
    with contextlib.closing(sqlite3.connect(path)) as db:  # start from an empty log
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@contextlib.contextmanager
def server_on(path: Path, log_path: Path, **overrides: str):
    server = DaphneServer(server_env(path, **overrides), log_path).start()
    try:
        yield server
    finally:
        server.stop()


def in_database_file(path: Path, charge_point_id: str) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
        return (
            db.execute(
                "SELECT count(*) FROM chargepoints_chargepoint WHERE charge_point_id = ? AND charge_point_model = ?",
                (charge_point_id, "Checkpointed"),
            ).fetchone()[0]
            == 1
        )


async def boot(server: DaphneServer, charge_point_id: str) -> None:
    client = await OCPPClient.open(server.ws_url(charge_point_id))
    try:
        assert (await client.boot(model="Checkpointed")).status == "Accepted"
    finally:
        await client.close()


async def test_the_server_checkpoints_what_it_wrote_into_the_database_file(fresh_database, tmp_path):
    with server_on(fresh_database, tmp_path / "daphne.log", LEVITY_SQLITE_CHECKPOINT_SECONDS="0.2") as server:
        await boot(server, "CKPT-1")
        await eventually(lambda: in_database_file(fresh_database, "CKPT-1"))


async def test_without_the_checkpoint_thread_a_small_write_stays_in_the_log(fresh_database, tmp_path):
    with server_on(fresh_database, tmp_path / "daphne.log", LEVITY_SQLITE_CHECKPOINT_SECONDS="0") as server:
        await boot(server, "CKPT-2")
        await asyncio.sleep(1.0)
        assert not in_database_file(fresh_database, "CKPT-2")


@pytest.mark.parametrize(("limit", "restarted"), [(10, True), (100_000, False)], ids=["past", "within"])
def test_a_log_grown_past_the_limit_is_checkpointed_with_restart(tmp_path, monkeypatch, limit, restarted):
    monkeypatch.setattr(sqlite, "WAL_LIMIT_PAGES", limit)
    path = tmp_path / "grown.sqlite3"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE t (x TEXT)")
        writer.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,) for _ in range(200)])
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            statements: list[str] = []
            db.set_trace_callback(statements.append)
            log_pages, checkpointed = sqlite.checkpoint(db)
    assert log_pages > 10
    assert log_pages == checkpointed
    assert ("PRAGMA wal_checkpoint(RESTART)" in statements) is restarted


@pytest.mark.parametrize(
    "database",
    [
        {"ENGINE": "django.db.backends.postgresql", "NAME": "levity"},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb_default?mode=memory&cache=shared"},
    ],
    ids=["postgresql", "memory", "shared-memory"],
)
def test_no_checkpoint_thread_where_there_is_no_sqlite_file(database):
    assert sqlite.start_checkpointer(database, interval=1.0) is None


def test_no_checkpoint_thread_when_switched_off(tmp_path):
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")}
    assert sqlite.start_checkpointer(database, interval=0) is None


@pytest.mark.django_db
def test_server_connections_leave_checkpoints_to_the_thread_and_cap_the_log_file():
    from django.db import connection

    try:
        sqlite._disable_automatic_checkpoints(sender=None, connection=connection)
        with connection.cursor() as cursor:
            assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            assert cursor.execute("PRAGMA journal_size_limit").fetchone()[0] == sqlite.WAL_LIMIT_PAGES * 4096
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=1000")
            cursor.execute("PRAGMA journal_size_limit=-1")


def log_file_after_commits(path: Path, finish: bool) -> list[int]:
    """Commits that never pause, the thread catching up between them: the log file's size after each."""
    with (
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as writer,
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as thread,
    ):
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE t (x TEXT)")
        lengths = []
        for _ in range(40):
            writer.execute("BEGIN IMMEDIATE")  # the next batch began before the thread caught up
            writer.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
            sqlite.catch_up(thread)
            writer.execute("COMMIT")
            if finish:
                sqlite.finish_catch_up(writer)
            lengths.append(Path(f"{path}-wal").stat().st_size)
        return lengths


@pytest.fixture
def small_reset(monkeypatch):
    monkeypatch.setattr(sqlite, "RESET_PAGES", 10)
    monkeypatch.setattr(sqlite, "_caught_up", (0, 0.0))
    monkeypatch.setattr(sqlite, "_finished_at", 0.0)


def test_under_writes_that_never_pause_the_log_only_grows(tmp_path, small_reset):
    sizes = log_file_after_commits(tmp_path / "grows.sqlite3", finish=False)
    assert sizes == sorted(sizes) and sizes[-1] > 40 * 4096


def test_a_writer_finishing_the_catch_up_makes_the_log_start_afresh(tmp_path, small_reset):
    sizes = log_file_after_commits(tmp_path / "afresh.sqlite3", finish=True)
    assert max(sizes) < 20 * 4096


def test_a_writer_finishes_each_catch_up_once(tmp_path, small_reset):
    with contextlib.closing(sqlite3.connect(tmp_path / "once.sqlite3", isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        sqlite._caught_up = (sqlite.RESET_PAGES, time.monotonic())
        assert sqlite.finish_catch_up(db)
        assert not sqlite.finish_catch_up(db)


def test_a_short_log_is_left_to_the_thread(tmp_path, small_reset):
    with contextlib.closing(sqlite3.connect(tmp_path / "short.sqlite3", isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        sqlite._caught_up = (sqlite.RESET_PAGES - 1, time.monotonic())
        assert not sqlite.finish_catch_up(db)


class ClosedDatabase:
    """A Django connection whose SQLite connection fails every statement."""

    vendor = "sqlite"
    alias = "default"
    in_atomic_block = False

    def __init__(self, tmp_path: Path):
        self.connection = sqlite3.connect(tmp_path / "closed.sqlite3")
        self.connection.close()


def test_a_failed_checkpoint_after_a_commit_is_logged_not_raised(tmp_path, small_reset, caplog):
    sqlite._caught_up = (sqlite.RESET_PAGES, time.monotonic())
    sqlite.after_commit(ClosedDatabase(tmp_path))
    assert "SQLite checkpoint after a commit failed" in caplog.text
