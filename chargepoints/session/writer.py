"""Group commit: the database writes of many sessions in one thread hop and one transaction.

Each OCPP session awaits its own write, but while one batch runs in the database
thread the writes of other sessions queue up, and the next batch takes them all.
With one charge point it behaves as before (no added wait); with hundreds it turns
hundreds of thread hops, transactions and INSERTs into a few. A session answers
only after its batch has committed, so an acknowledged message is always stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from channels.db import database_sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from levity_site import sqlite

Request = TypeVar("Request")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)


class GroupCommit(Generic[Request, Result]):
    """Runs ``batch(requests) -> [result or exception per request]`` on queued requests.

    ``batch`` is synchronous, runs in the database thread, and must isolate one
    request's failure from the others (return the exception in its place). If
    ``batch`` itself raises, every request of that batch gets the exception.
    """

    def __init__(self, batch: Callable[[list[Request]], list], max_batch: int = 500) -> None:
        self.batch = batch
        self._run_in_db_thread = database_sync_to_async(self._batch_and_tend_log)
        self.max_batch = max_batch
        self._queue: list[tuple[Request, asyncio.Future]] = []
        self._runner: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _batch_and_tend_log(self, requests: list[Request]) -> list:
        results = self.batch(requests)
        sqlite.after_commit(connections[DEFAULT_DB_ALIAS])
        return results

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): forget the old one's state
            self._loop, self._queue, self._runner = loop, [], None
        future = loop.create_future()
        self._queue.append((request, future))
        if self._runner is None:
            # In a context of its own: the batches must run in the process-wide
            # database thread, not in the thread of whichever HTTP request (an
            # asgiref ThreadSensitiveContext) happened to submit first.
            self._runner = loop.create_task(self._run(), context=contextvars.Context())
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                requests = [request for request, _ in taken]
                try:
                    results = await self._run_in_db_thread(requests)
                except asyncio.CancelledError:
                    for _, future in taken + self._queue:
                        future.cancel()
                    self._queue = []
                    raise
                except Exception as exc:  # the batch as a whole failed: every waiter learns why
                    results = [exc] * len(taken)
                for (_, future), result in zip(taken, results):
                    if future.done():  # the session went away meanwhile
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._runner = None


class BulkWrite(GroupCommit[Request, Result]):
    """A GroupCommit whose requests are written together in a few bulk queries.

    ``bulk(requests)`` does the work of every request at once (one INSERT for all
    history rows, one query to read what they update, ...) and returns a result per
    request (or, in its place, the exception that request alone met). If that
    transaction fails -- a row the database refuses, a unique constraint raced by
    another server process -- each request is redone alone in a transaction of its
    own, so one request's failure stays its own: by ``bulk([request])``, or by
    ``single(request)`` where the one-message form must handle what the bulk form
    leaves to it (a retried StartTransaction's unique key).
    """

    def __init__(
        self,
        bulk: Callable[[list[Request]], list[Result]],
        single: Callable[[Request], Result] | None = None,
        max_batch: int = 500,
    ) -> None:
        self.bulk = bulk
        self.single = single
        super().__init__(self._write, max_batch)

    def _write(self, requests: list[Request]) -> list:
        try:
            with transaction.atomic():
                return self.bulk(requests)
        except Exception:  # noqa: BLE001 - redone alone below; each request gets its own outcome
            if self.single is None and len(requests) == 1:
                raise  # it was already alone
            logger.debug(
                "%s of %d requests failed; doing them one by one",
                self.bulk.__qualname__,
                len(requests),
                exc_info=True,
            )
        return [_alone(self._one, (request,), {}) for request in requests]

    def _one(self, request: Request) -> Result:
        if self.single is not None:
            return self.single(request)
        return self.bulk([request])[0]


def _run_each(calls: list[tuple[Callable, tuple, dict]]) -> list:
    """Each call in its own savepoint, all in one transaction: one commit for the batch."""
    results: list = []
    try:
        with transaction.atomic():
            for func, args, kwargs in calls:
                try:
                    with transaction.atomic():
                        results.append(func(*args, **kwargs))
                except Exception as exc:  # this call's work is rolled back; the others' is kept
                    results.append(exc)
    except DatabaseError:
        # The commit itself failed: a deferred constraint (SQLite checks foreign keys
        # at commit), so some call wrote a row whose charge point was deleted
        # meanwhile. Which one only its own commit can tell.
        if len(calls) == 1:
            raise
        logger.warning("A batch of %d failed at commit; redoing each alone", len(calls), exc_info=True)
        return [_alone(func, args, kwargs) for func, args, kwargs in calls]
    return results


def _alone(func: Callable, args: tuple, kwargs: dict):
    """``func`` in a transaction of its own; its exception, if any, as its result."""
    try:
        with transaction.atomic():
            return func(*args, **kwargs)
    except Exception as exc:
        return exc


#: The session's database work (one message's worth per call), batched across sessions.
shared_transactions: GroupCommit = GroupCommit(_run_each)


async def run_batched(func: Callable[..., Result], *args, **kwargs) -> Result:
    """Run a synchronous database function in the next shared batch and return its result.

    Like ``database_sync_to_async(func)(*args, **kwargs)``: the same thread, the same
    result or exception, and an atomic unit of work (a savepoint); but many sessions'
    calls share one thread hop and one commit.
    """
    return await shared_transactions.submit((func, args, kwargs))
