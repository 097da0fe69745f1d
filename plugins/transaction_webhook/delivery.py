"""The delivery worker: one thread per server process that posts the outbox's due rows.

It runs an asyncio loop of its own (aiohttp), so that neither a slow webhook nor the
worker's database queries ever delay an OCPP session; a charge point's disconnect
does not concern it. Each round it claims due rows (``outbox.claim``), posts them
concurrently -- JSON body, ``Idempotency-Key`` header -- and records each attempt:
2xx is delivered, anything else is retried with backoff. It sleeps until the next
row is due, at most ``LEVITY_WEBHOOK_POLL_SECONDS`` (rows written by other server processes), and
is woken at once when this process commits a new row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from . import outbox
from .models import OutboxDelivery

if TYPE_CHECKING:
    # Imported by the worker when it starts: this module is imported in every process
    # (the plugin's receivers and admin), the worker runs in server processes only.
    import aiohttp

logger = logging.getLogger("levity.plugins.TransactionNotificationPlugin")

#: The most rows posted at once.
CLAIM_LIMIT = 50


class DeliveryWorker:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        # Django's ORM is synchronous: the worker's queries run on a thread of their own.
        self._database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="levity-webhook-db")
        self.thread = threading.Thread(target=self._main, name="levity-webhook-delivery", daemon=True)

    def start(self) -> DeliveryWorker:
        self.thread.start()
        self._ready.wait(5)
        return self

    def wake(self) -> None:
        """Look for due rows now (from any thread)."""
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the process is exiting
                self._loop.call_soon_threadsafe(self._wake.set)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        import aiohttp

        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        async with aiohttp.ClientSession() as session:
            while True:
                self._wake.clear()
                try:
                    posted = await self._round(session)
                    sleep = 0.0 if posted else await self._db(self._sleep_seconds)
                except DatabaseError:
                    logger.exception(
                        "Webhook delivery: database error; retrying in %s s",
                        settings.LEVITY_WEBHOOK_POLL_SECONDS,
                    )
                    sleep = settings.LEVITY_WEBHOOK_POLL_SECONDS
                except Exception:  # never let one bad round end delivery in this process
                    logger.exception(
                        "Webhook delivery failed; retrying in %s s", settings.LEVITY_WEBHOOK_POLL_SECONDS
                    )
                    sleep = settings.LEVITY_WEBHOOK_POLL_SECONDS
                if sleep:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), sleep)

    async def _db(self, func: Callable, *args):
        assert self._loop is not None  # set by _run, which is what calls this
        return await self._loop.run_in_executor(self._database, _with_connection, func, *args)

    async def _round(self, session: aiohttp.ClientSession) -> int:
        rows = await self._db(outbox.claim, CLAIM_LIMIT)
        if rows:
            errors = await asyncio.gather(*(post(session, row) for row in rows))
            await self._db(_record, rows, errors)
        return len(rows)

    def _sleep_seconds(self) -> float:
        due = outbox.next_due()
        if due is None:
            return settings.LEVITY_WEBHOOK_POLL_SECONDS
        return min(
            max((due - datetime.now(timezone.utc)).total_seconds(), 0.01),
            settings.LEVITY_WEBHOOK_POLL_SECONDS,
        )


def _with_connection(func: Callable, *args):
    close_old_connections()
    try:
        return func(*args)
    finally:
        close_old_connections()


def _record(rows: list[OutboxDelivery], errors: list[str | None]) -> None:
    for row, error in zip(rows, errors, strict=True):
        outbox.attempted(row, error)


async def post(session: aiohttp.ClientSession, row: OutboxDelivery) -> str | None:
    """POST one notification; None if the webhook answered 2xx, else what went wrong."""
    import aiohttp

    what = f"{row.event} notification for tx {row.transaction_id}"
    try:
        async with session.post(
            row.webhook_url,
            json=row.payload,
            headers={"Idempotency-Key": row.idempotency_key},
            timeout=aiohttp.ClientTimeout(total=row.timeout),
        ) as response:
            if not 200 <= response.status < 300:
                logger.error(
                    "Webhook answered %s to %s (attempt %d)", response.status, what, row.attempts + 1
                )
                return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = str(exc) or type(exc).__name__
        logger.error("Failed to send %s (attempt %d): %s", what, row.attempts + 1, error)
        return error
    logger.info("Sent %s", what)
    return None


_worker: DeliveryWorker | None = None
_worker_lock = threading.Lock()


def ensure_started() -> DeliveryWorker:
    """This process's worker, started on first use."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = DeliveryWorker().start()
        return _worker


def wake() -> None:
    """After a commit that added rows: the worker looks at once (if this process runs one)."""
    if _worker is not None:
        _worker.wake()
