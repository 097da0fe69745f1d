"""The one write path from the sessions to the database: group commit, on a thread of its own.

Every database write of the OCPP session layer -- a session's messages, connects and
disconnects, last-seen times, CS->CP commands, the plugins' repositories -- is a
request of some ``Write``, submitted here. Requests queue while a batch runs; the
next batch takes them all, of every kind, into one transaction on the OCPP
database thread: one thread hop and one commit for hundreds of messages. A session
answers only after its batch has committed, so an acknowledged message is stored.

In a batch each kind of write runs its requests together (``bulk``). Should one
kind fail -- a row the database refuses, a unique key raced by another server
process -- the batch is rolled back and written again with each kind in a
savepoint, and the requests of a kind that fails again are redone one by one,
each in a savepoint of its own (``alone``), so that one request's failure stays
its own. (A savepoint per kind costs two statements, which a batch whose kinds
all succeed does without.) Should the commit itself fail (SQLite checks foreign
keys at commit), every request is redone in a transaction of its own. So a write
may run more than once, rolled back but the last time: it does nothing but
database work.

A request of a session that ended or was replaced meanwhile is dropped before its
batch runs (the awaiting handler gets ``Dropped``), not committed after.

A request that waits for a row lock longer than ``DATABASE_LOCK_TIMEOUT`` (PostgreSQL:
a row held by an outside slow query, say) fails with a lock timeout: the batch is
written again with savepoints, where it fails in its own; the batch commits for
everyone else, and the request is retried alone, in
a transaction of its own on a second thread (``retry_executor``), waiting up to
``DATABASE_LOCK_RETRY_TIMEOUT`` for its lock. Until its retries are done a session's
further requests go there too, in order. So a blocked row costs the batch its request
was in at most three times ``DATABASE_LOCK_TIMEOUT`` (the batch without savepoints,
its kind's bulk write in a savepoint, then its redo alone), not the whole time the
row is held. SQLite has one writer by design: a lock
is on the whole database, and every write waits for it up to the busy timeout
(settings).

The thread is Levity's own (``executor``), not asgiref's single shared thread: a
slow synchronous signal receiver or HTTP view never delays an OCPP answer. (The one
writer outside this path is the server process's liveness thread,
chargepoints.session.processes, which must keep running when the event loop cannot.)
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, close_old_connections, connections, transaction

from levity_site import sqlite

Request = TypeVar("Request")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)

#: The most requests one batch takes; the rest wait for the next.
MAX_BATCH = 500


class Dropped(Exception):
    """A request not written because its session ended or was replaced first."""


class BatchFailed(Exception):
    """The batch holding a request failed as a whole (its cause is ``__cause__``)."""


class Owner(Protocol):
    """What a request's session tells the writer: whether its writes are still wanted."""

    @property
    def accepts_writes(self) -> bool: ...


class Write(Generic[Request, Result]):
    """A kind of database write: ``bulk(requests) -> [result or exception per request]``.

    ``bulk`` is synchronous and does the work of many requests at once; it may return
    an exception in the place of a request that alone failed. ``alone(request)``,
    when given, is what redoes a request by itself if the bulk form failed (a
    retried StartTransaction finds its first row there); else ``bulk([request])``.
    """

    def __init__(
        self,
        bulk: Callable[[list[Request]], list],
        alone: Callable[[Request], Result] | None = None,
    ) -> None:
        self.bulk = bulk
        self.alone = alone

    def __repr__(self) -> str:
        return f"<Write {self.bulk.__qualname__}>"

    def submit(self, request: Request, session: Owner | None = None) -> Coroutine[Any, Any, Result]:
        """Write ``request`` in the next batch; await its result, or its own exception.

        With ``session``, the request is dropped (``Dropped``) if the session no
        longer ``accepts_writes`` when its batch is about to run. (The queue's own
        coroutine, not one more around it.)
        """
        return _group_commit.submit(self, request, session)

    def one(self, request: Request) -> Result:
        if self.alone is not None:
            return self.alone(request)
        result = self.bulk([request])[0]
        if isinstance(result, BaseException):
            raise result
        return result


def _call_each(calls: list[tuple[Callable, tuple, dict]]) -> list:
    return [func(*args, **kwargs) for func, args, kwargs in calls]


#: One synchronous database function call per request (what has no bulk form).
calls: Write[tuple[Callable, tuple, dict], Any] = Write(_call_each)


def run(func: Callable[..., Result], *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Result]:
    """``func(*args, **kwargs)`` in the next batch, atomically; await its result or exception."""
    return calls.submit((func, args, kwargs))


def run_for(
    session: Owner, func: Callable[..., Result], *args: Any, **kwargs: Any
) -> Coroutine[Any, Any, Result]:
    """As ``run``, for a session: dropped if the session ends before the batch runs."""
    return calls.submit((func, args, kwargs), session)


# --- the batches ---------------------------------------------------------------------------


class _KindFailed(Exception):
    """A kind's ``bulk`` failed in a batch written without savepoints: roll back, write again with them."""


def write_batch(items: list[tuple[Write, Any]]) -> list:
    """Write ``(write, request)`` pairs in one transaction; a result or an exception per pair."""
    groups: dict[Write, list[int]] = {}
    for index, (write, _) in enumerate(items):
        groups.setdefault(write, []).append(index)
    lock_timeout = settings.DATABASE_LOCK_TIMEOUT
    try:
        try:
            return _write_groups(items, groups, savepoints=False, lock_timeout=lock_timeout)
        except _KindFailed:
            return _write_groups(items, groups, savepoints=True, lock_timeout=lock_timeout)
    except DatabaseError as exc:
        # The commit itself failed: a deferred constraint (SQLite checks foreign keys
        # at commit), so some request wrote a row whose charge point was deleted
        # meanwhile. Which one only its own commit can tell.
        if len(items) == 1:
            return [exc]
        logger.warning("A batch of %d writes failed at commit; redoing each alone", len(items), exc_info=True)
        return [
            _alone(write, request, savepoint=False, lock_timeout=lock_timeout) for write, request in items
        ]


def _write_groups(
    items: list[tuple[Write, Any]], groups: dict[Write, list[int]], *, savepoints: bool, lock_timeout: float
) -> list:
    """Each kind's requests in bulk, all in one transaction; without ``savepoints``,
    a kind that fails raises _KindFailed (which rolls the transaction back)."""
    results: list = [None] * len(items)
    with transaction.atomic():
        limit_lock_waits(lock_timeout)
        for write, indexes in groups.items():
            requests = [items[index][1] for index in indexes]
            if savepoints:
                written = _write_group(write, requests)
            else:
                try:
                    written = _bulk(write, requests)
                except Exception as exc:
                    raise _KindFailed(f"{write!r} of {len(requests)} requests failed") from exc
            for index, result in zip(indexes, written, strict=True):
                results[index] = result
    return results


def _bulk(write: Write, requests: list) -> list:
    results = write.bulk(requests)
    if len(results) != len(requests):
        raise RuntimeError(f"{write!r} returned {len(results)} results for {len(requests)} requests")
    return results


def limit_lock_waits(seconds: float) -> None:
    """PostgreSQL: the statements of the current transaction wait at most ``seconds`` for a lock.

    ``SET LOCAL``: the limit ends with the transaction, so a pooled connection goes
    back to the pool as it came. 0: no limit. SQLite: nothing (its busy timeout).
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if not seconds or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{max(1, round(seconds * 1000))}ms"])


def waited_too_long_for_a_lock(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is PostgreSQL's lock timeout (SQLSTATE 55P03)."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes, not a cycle
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) == "55P03":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _write_group(write: Write, requests: list) -> list:
    try:
        with transaction.atomic():
            return _bulk(write, requests)
    except Exception as exc:
        if write.alone is None and len(requests) == 1:
            return [exc]  # it was already alone
        logger.debug("%r of %d requests failed; doing them one by one", write, len(requests), exc_info=True)
    return [_alone(write, request) for request in requests]


def _alone(write: Write, request: Any, *, savepoint: bool = True, lock_timeout: float = 0) -> Any:
    """``write.one(request)`` in a transaction (or savepoint) of its own; its exception as its result.

    ``lock_timeout`` applies to a transaction of its own (``savepoint=False``); a
    savepoint has its batch's.
    """
    try:
        with transaction.atomic(savepoint=savepoint):
            if not savepoint:
                limit_lock_waits(lock_timeout)
            return write.one(request)
    except Exception as exc:
        return exc


def _write_in_thread(items: list[tuple[Write, Any]]) -> list:
    """A batch on the OCPP database thread, with Django's connection upkeep around it."""
    close_old_connections()
    try:
        return write_batch(items)
    finally:
        sqlite.after_commit(connections[DEFAULT_DB_ALIAS])
        close_old_connections()


def _retry_in_thread(write: Write, request: Any) -> Any:
    """A request that waited too long for a lock in its batch, alone, waiting longer."""
    close_old_connections()
    try:
        return _alone(write, request, savepoint=False, lock_timeout=settings.DATABASE_LOCK_RETRY_TIMEOUT)
    finally:
        close_old_connections()


_threads: dict[str, ThreadPoolExecutor] = {}
_threads_lock = threading.Lock()


def _one_thread(name: str) -> ThreadPoolExecutor:
    """The executor of one thread named ``name``, made on first use."""
    with _threads_lock:
        if name not in _threads:
            _threads[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _threads[name]


def executor() -> ThreadPoolExecutor:
    """The OCPP database thread: one, so that batches run one after the other."""
    return _one_thread("levity-db")


def retry_executor() -> ThreadPoolExecutor:
    """The thread of the requests retried alone after a lock timeout: one, so they keep their order."""
    return _one_thread("levity-db-retry")


@dataclass(slots=True)
class _Pending:
    write: Write
    request: Any
    future: asyncio.Future
    session: Owner | None

    def wanted(self) -> bool:
        return not self.future.done() and (self.session is None or self.session.accepts_writes)

    def drop(self) -> None:
        """Its session ended before it was written: the waiter gets ``Dropped``."""
        if not self.future.done():
            self.future.set_exception(Dropped(f"{self.write!r}: the session ended"))

    def settle(self, result: Any) -> None:
        """Give the waiter its result (an exception is raised to it), unless it went away."""
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


class GroupCommit:
    """The queue of requests and the task that writes them, batch after batch."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._runner: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Requests to retry alone (a lock timeout in their batch), and their task.
        self._retries: list[_Pending] = []
        self._retrier: asyncio.Task | None = None
        #: id(session) -> how many of its requests are in ``_retries`` or being retried.
        self._retrying: dict[int, int] = {}

    async def submit(self, write: Write, request: Any, session: Owner | None) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): forget the old one's state
            self._loop, self._queue, self._runner = loop, [], None
            self._retries, self._retrier, self._retrying = [], None, {}
        future = loop.create_future()
        pending = _Pending(write, request, future, session)
        if session is not None and id(session) in self._retrying:
            self._retry(pending)  # behind its session's retried requests, in order
        else:
            self._queue.append(pending)
            if self._runner is None:
                # In a context of its own, not the one of whichever session or HTTP request
                # happened to submit first (the runner outlives it).
                self._runner = loop.create_task(self._run(), context=contextvars.Context())
        return await future

    def _retry(self, pending: _Pending) -> None:
        if pending.session is not None:
            key = id(pending.session)
            self._retrying[key] = self._retrying.get(key, 0) + 1
        self._retries.append(pending)
        if self._retrier is None:
            loop = asyncio.get_running_loop()
            self._retrier = loop.create_task(self._run_retries(), context=contextvars.Context())

    def _retried(self, pending: _Pending) -> None:
        if pending.session is not None:
            key = id(pending.session)
            left = self._retrying.get(key, 0) - 1
            if left > 0:
                self._retrying[key] = left
            else:
                self._retrying.pop(key, None)

    async def _run_retries(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._retries:
                pending = self._retries.pop(0)
                try:
                    if not pending.wanted():
                        pending.drop()
                        continue
                    result = await loop.run_in_executor(
                        retry_executor(), _retry_in_thread, pending.write, pending.request
                    )
                except asyncio.CancelledError:
                    for waiting in [pending, *self._retries]:
                        waiting.future.cancel()
                    self._retries, self._retrying = [], {}
                    raise
                except Exception as exc:
                    result = exc
                finally:
                    self._retried(pending)
                pending.settle(result)
        finally:
            self._retrier = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                live = []
                for pending in taken:
                    if pending.wanted():
                        live.append(pending)
                    else:
                        pending.drop()
                if not live:
                    continue
                try:
                    results = await loop.run_in_executor(
                        executor(), _write_in_thread, [(p.write, p.request) for p in live]
                    )
                except asyncio.CancelledError:
                    for pending in live + self._queue:
                        pending.future.cancel()
                    self._queue = []
                    raise
                except Exception as exc:  # the batch as a whole failed: each waiter gets its own error
                    results = [_batch_failed(exc, len(live)) for _ in live]
                for pending, result in zip(live, results, strict=True):
                    if pending.future.done():  # its waiter went away meanwhile
                        continue
                    if isinstance(result, BaseException) and waited_too_long_for_a_lock(result):
                        logger.warning(
                            "%r waited more than DATABASE_LOCK_TIMEOUT for a lock; retrying it alone",
                            pending.write,
                        )
                        self._retry(pending)
                    else:
                        pending.settle(result)
        finally:
            self._runner = None


def _batch_failed(cause: Exception, size: int) -> BatchFailed:
    error = BatchFailed(f"The batch of {size} writes failed: {cause!r}")
    error.__cause__ = cause
    return error


_group_commit = GroupCommit()
