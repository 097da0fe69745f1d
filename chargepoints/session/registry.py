"""The charge points connected to this process, and their last-seen bookkeeping.

Last-seen and last-heartbeat times live on the session and are written to the
database in one bulk update every LEVITY_LAST_SEEN_FLUSH_SECONDS (and at
disconnect), so a heartbeat costs no database write.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from django.conf import settings

from .. import services
from ..security import Credentials
from . import writer

if TYPE_CHECKING:
    from .base import Session

logger = logging.getLogger(__name__)

#: Close code sent to a session that a reconnect with the same id replaced.
CLOSE_REPLACED = 4000
#: Close code for a charge point the onboarding policy refuses (a session served by ``start()``).
CLOSE_REFUSED = 4003

#: What every charge point sends at once when a server restarts -- its connect, and
#: before that often its disconnect -- is written in bulk.
connections_writer: writer.Write[services.Connection, services.Connected | Credentials | None] = writer.Write(
    services.register_connections
)
disconnections_writer: writer.Write[services.Disconnection, None] = writer.Write(
    services.record_disconnections
)

_sessions: dict[str, Session] = {}
_flushed: dict[str, tuple[float, float | None]] = {}
_flusher: asyncio.Task | None = None


def get(charge_point_id: str) -> Session | None:
    return _sessions.get(charge_point_id)


def connected_pks() -> list[int]:
    """The rows of this process's charge points (callable from any thread)."""
    return [s.charge_point_pk for s in list(_sessions.values()) if s.charge_point_pk is not None]


def register(session: Session) -> Session | None:
    """Make `session` the charge point's session; return the one it replaces."""
    global _flusher
    previous = _sessions.get(session.id)
    if previous is not None and previous is not session:
        previous.mark_replaced()
    _sessions[session.id] = session
    if _flusher is None or _flusher.done():
        _flusher = asyncio.create_task(_flush_forever())
    return previous


def unregister(session: Session) -> bool:
    """Forget `session`; False when a newer session of the same id replaced it."""
    if _sessions.get(session.id) is not session:
        return False
    del _sessions[session.id]
    _flushed.pop(session.id, None)
    return True


async def open_session(session: Session) -> None:
    """Register `session` so commands reach it; close the older one it replaces."""
    previous = register(session)
    if previous is not None:
        logger.info("%s reconnected; closing its previous session", session.id)
        await previous.close(CLOSE_REPLACED)


async def close_session(session: Session) -> None:
    """Unregister `session` and record the charge point offline with its last-seen times.

    Nothing is written when a newer session of the same id replaced it: the row is
    that session's now. Nor when a newer connect wrote the row meanwhile (its
    session not registered yet): the disconnect matches this session's connect time.
    """
    if not unregister(session) or session.charge_point_pk is None:
        return
    await disconnections_writer.submit(
        services.Disconnection(
            session.charge_point_pk,
            datetime.now(timezone.utc),
            datetime.fromtimestamp(session.last_seen_at, timezone.utc),
            _timestamp(session.last_heartbeat_at),
            connected_at=session.row_connected_at,
        )
    )


def _timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def _changed_rows() -> dict[int, tuple[datetime, datetime | None]]:
    rows = {}
    for cp_id, session in _sessions.items():
        mark = (session.last_seen_at, session.last_heartbeat_at)
        if session.charge_point_pk is None or _flushed.get(cp_id) == mark:
            continue
        _flushed[cp_id] = mark
        rows[session.charge_point_pk] = (datetime.fromtimestamp(mark[0], timezone.utc), _timestamp(mark[1]))
    return rows


async def flush_last_seen() -> int:
    rows = _changed_rows()
    if rows:
        await writer.run(services.record_last_seen, rows)
    return len(rows)


async def _flush_forever() -> None:
    while _sessions:
        await asyncio.sleep(settings.LEVITY_LAST_SEEN_FLUSH_SECONDS)
        try:
            await flush_last_seen()
        except Exception:
            logger.exception("Writing last-seen times failed; will retry")
