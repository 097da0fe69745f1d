"""The server processes, and the charge points of the ones that died.

A charge point's row says it is online from its connect to its disconnect. A server
process that ends without running its disconnects -- killed with SIGKILL, out of
memory, its machine gone -- would leave its charge points online for good. So each
server process has a ServerProcess row that a thread of its own refreshes every
LEVITY_PROCESS_ALIVE_SECONDS, and the rows of the charge points it holds name it
(``ChargePoint.server_process``). As it refreshes its own row, every process also
deletes the rows of processes silent for DEAD_AFTER intervals and marks their
charge points offline: a single process that crashed is cleaned up after by the
next one to start, one of several by the others.

A process that was only frozen for that long (a suspended VM) finds its row gone
when it wakes, writes it again and marks its own charge points online again. A
process that exits cleanly (SIGTERM) removes its row as it goes, and marks offline any
of its charge points whose session did not end in time (``stop``, run at exit).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction

from ..models import ChargePoint, ServerProcess

logger = logging.getLogger(__name__)

#: Refresh intervals without a refresh after which a process counts as dead.
DEAD_AFTER = 3

_current: uuid.UUID | None = None


def current() -> uuid.UUID | None:
    """This process's ServerProcess id once ``start()`` has registered it; None elsewhere."""
    return _current


def start(interval: float | None = None) -> threading.Thread | None:
    """In a server process: register it, clean up after dead ones, and keep it alive."""
    global _current
    interval = settings.LEVITY_PROCESS_ALIVE_SECONDS if interval is None else interval
    if not interval:
        return None
    process_id = uuid.uuid4()
    try:
        sweep(interval)
        _register(process_id, _now())
    except DatabaseError:
        logger.exception(
            "Cannot register this server process (is the database migrated?): the charge "
            "points of a server process that dies will stay marked online"
        )
        return None
    _current = process_id
    atexit.register(stop, process_id)
    thread = threading.Thread(
        target=_keep_alive, args=(process_id, interval), name="levity-process-alive", daemon=True
    )
    thread.start()
    return thread


def stop(process_id: uuid.UUID) -> int:
    """At a clean exit: the process's charge points go offline now, and its row goes."""
    try:
        with transaction.atomic():
            offline = _forget(process_id, _now())
    except DatabaseError:
        logger.exception("Could not mark this server process's charge points offline as it stopped")
        return 0
    if offline:
        logger.info("Stopping: marked %d charge point(s) offline", offline)
    return offline


def _keep_alive(process_id: uuid.UUID, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            close_old_connections()
            refresh(process_id)
            sweep(interval)
        except Exception:
            logger.exception("Refreshing server process %s failed; will retry", process_id)


def _register(process_id: uuid.UUID, now: datetime) -> None:
    ServerProcess.objects.create(
        id=process_id, hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now, alive_at=now
    )


def refresh(process_id: uuid.UUID, now: datetime | None = None) -> None:
    """Mark the process alive; if others took it for dead meanwhile, reclaim its charge points."""
    from . import registry  # registry -> services -> processes

    now = now or _now()
    if ServerProcess.objects.filter(pk=process_id).update(alive_at=now):
        return
    logger.warning("This server process was taken for dead (it was silent too long): registering it again")
    with transaction.atomic():
        _register(process_id, now)
        ChargePoint.objects.filter(pk__in=registry.connected_pks()).update(
            is_connected=True, server_process=process_id
        )


def sweep(interval: float, now: datetime | None = None) -> int:
    """Forget processes silent for DEAD_AFTER intervals; mark their charge points offline.

    A charge point goes offline as of the last time its process was seen alive.
    Returns how many went offline.
    """
    now = now or _now()
    cutoff = now - timedelta(seconds=DEAD_AFTER * interval)
    with transaction.atomic():
        # Locked, so that a refresh coming in now waits, then finds its row gone.
        dead = ServerProcess.objects.select_for_update().filter(alive_at__lt=cutoff)
        offline = sum(_forget(process.id, process.alive_at) for process in dead)
    if offline:
        logger.warning(
            "Marked %d charge point(s) offline: the server process holding them stopped "
            "without closing their connections",
            offline,
        )
    return offline


def _forget(process_id: uuid.UUID, disconnected_at: datetime) -> int:
    """Mark the process's charge points offline as of ``disconnected_at``; delete its row."""
    offline = ChargePoint.objects.filter(server_process=process_id, is_connected=True).update(
        is_connected=False, disconnected_at=disconnected_at, server_process=None
    )
    ServerProcess.objects.filter(pk=process_id).delete()
    return offline


def _now() -> datetime:
    return datetime.now(timezone.utc)
