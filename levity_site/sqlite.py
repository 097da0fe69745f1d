"""SQLite write-ahead-log checkpoints in a thread of their own, off the commit path.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages:
that commit copies the log into the database file and syncs it to disk, and every
OCPP session waiting on that batch waits with it; bench/ saw these stalls in the
MeterValues p99 (bench/results/measurements.md). So a server process
turns automatic checkpoints off for its own connections and, every
LEVITY_SQLITE_CHECKPOINT_SECONDS, checkpoints from this thread until it has caught
up: PASSIVE, which never blocks a writer.

SQLite starts the log afresh only for a write transaction that begins with all of
the log checkpointed. Under writes that never pause, another commit always lands
between the thread's catching up and the next transaction, so the log grew to
WAL_LIMIT_PAGES, where a RESTART checkpoint (which makes writers wait) bounded it,
and bench/ saw each such checkpoint as a MeterValues p99 spike.
So the writer, right after a commit (``after_commit``), checkpoints the few pages
committed since the thread last caught up, once the log has RESET_PAGES: its next
transaction then starts the log afresh, and the file shrinks back to WAL_LIMIT_PAGES.

Durability is unchanged: each commit is in the log as before, and SQLite reads
through the log whatever has not been checkpointed yet.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

#: About 64 MB of 4 KB pages: past this, a checkpoint may make writers wait.
WAL_LIMIT_PAGES = 16_384
#: About 4 MB: a log this long that the thread has caught up with is made to start afresh.
RESET_PAGES = 1_024

#: (pages in the log, time.monotonic()) when the thread last caught up with the log.
_caught_up: tuple[int, float] = (0, 0.0)
#: When a writer last checkpointed what was committed since then.
_finished_at = 0.0


def start_checkpointer(
    database: dict | None = None, interval: float | None = None
) -> threading.Thread | None:
    """In a server process on an SQLite file: checkpoint from a thread of our own.

    ``database`` and ``interval`` default to the settings (the default database and
    LEVITY_SQLITE_CHECKPOINT_SECONDS).
    """
    database = database or settings.DATABASES["default"]
    interval = settings.LEVITY_SQLITE_CHECKPOINT_SECONDS if interval is None else interval
    path = str(database["NAME"])
    if database["ENGINE"] != "django.db.backends.sqlite3" or not interval or _in_memory(path):
        return None
    connection_created.connect(_disable_automatic_checkpoints, dispatch_uid="levity-sqlite-checkpoints")
    thread = threading.Thread(
        target=_checkpoint_forever, args=(path, interval), name="levity-sqlite-checkpoints", daemon=True
    )
    thread.start()
    return thread


def _in_memory(path: str) -> bool:
    return path == ":memory:" or "mode=memory" in path


def _disable_automatic_checkpoints(sender, connection: BaseDatabaseWrapper, **kwargs) -> None:
    if connection.vendor == "sqlite" and connection.alias == "default":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            # When the log starts afresh, its file shrinks back to this size.
            cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_PAGES * 4096}")


def _checkpoint_forever(path: str, interval: float) -> None:
    database = sqlite3.connect(path, timeout=20, isolation_level=None)
    while True:
        time.sleep(interval)
        try:
            catch_up(database)
        except sqlite3.Error:
            logger.exception("SQLite checkpoint of %s failed; trying again in %gs", path, interval)


def catch_up(database: sqlite3.Connection) -> None:
    """Checkpoint until all of the log is in the database file, and say so to writers."""
    global _caught_up
    while True:
        log_pages, checkpointed = checkpoint(database)
        if checkpointed >= log_pages:
            _caught_up = (log_pages, time.monotonic())
            return


def after_commit(connection: BaseDatabaseWrapper) -> None:
    """In the thread that has just committed on ``connection``: see the module's docstring."""
    if (
        connection.vendor == "sqlite"
        and connection.alias == "default"
        and connection.connection is not None
        and not connection.in_atomic_block
    ):
        try:
            finish_catch_up(connection.connection)
        except sqlite3.Error:
            # The commit stands; the thread's checkpoints still bound the log.
            logger.warning("SQLite checkpoint after a commit failed", exc_info=True)


def finish_catch_up(database: sqlite3.Connection) -> bool:
    """Checkpoint what was committed since the thread caught up with a long log, once."""
    global _finished_at
    log_pages, caught_up_at = _caught_up
    if log_pages < RESET_PAGES or caught_up_at <= _finished_at:
        return False
    _finished_at = time.monotonic()
    database.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return True


def checkpoint(database: sqlite3.Connection) -> tuple[int, int]:
    """One checkpoint: (pages in the log, pages of it now in the database file)."""
    _, log_pages, checkpointed = database.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if log_pages > WAL_LIMIT_PAGES:
        _, log_pages, checkpointed = database.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return log_pages, checkpointed
