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
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

from channels.db import database_sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

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


def insert_statement(model: type[Model], connection: BaseDatabaseWrapper) -> tuple[list[Field], str]:
    """The fields of a row the database numbers itself, and the INSERT of one such row."""
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    return fields, sql


_TEXT_FIELDS = (models.CharField, models.TextField)
_INTEGER_FIELDS = (
    models.IntegerField, models.BigIntegerField, models.SmallIntegerField,
    models.PositiveIntegerField, models.PositiveBigIntegerField, models.PositiveSmallIntegerField,
)  # fmt: skip
_AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)

_preparers: dict[tuple[Field, str], Callable[[Any], Any]] = {}


def value_preparer(field: Field, connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """``field.get_db_prep_save`` for ``connection``, faster for the plain cases.

    A reconnect storm's rows spent more time in ``get_db_prep_save`` (a chain of
    method calls and settings lookups for every value) than in the database. For
    None, a ``str`` in a text field, an ``int`` in an integer field and an aware
    ``datetime`` in a datetime field, this gives the same value directly; for any
    other value or field, it calls ``get_db_prep_save``.
    """
    key = (field, connection.alias)
    preparer = _preparers.get(key)
    if preparer is None:
        preparer = _preparers[key] = _make_preparer(field, connection)
    return preparer


def _make_preparer(field: Field, connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    generic = partial(field.get_db_prep_save, connection=connection)
    # A foreign key stores its target's value (ForeignKey.get_db_prep_save).
    stored = field.target_field if isinstance(field, models.ForeignKey) else field
    kind = type(stored)
    if kind in _TEXT_FIELDS:
        return lambda value: value if value is None or type(value) is str else generic(value)
    if kind in _INTEGER_FIELDS or kind in _AUTO_FIELDS:
        if kind in _AUTO_FIELDS:
            adapt_integer = connection.ops.validate_autopk_value
        else:
            adapt_integer = partial(connection.ops.adapt_integerfield_value, internal_type=stored.get_internal_type())

        def prepare_integer(value):
            if value is None:
                return None
            return adapt_integer(value) if type(value) is int else generic(value)

        return prepare_integer
    if kind is models.DateTimeField:
        adapt_datetime = connection.ops.adapt_datetimefield_value

        def prepare_datetime(value):
            if value is None:
                return None
            if type(value) is datetime and value.tzinfo is not None:
                return adapt_datetime(value)
            return generic(value)

        return prepare_datetime
    return generic


def insert_rows(model: type[Model], rows: Iterable[dict[str, Any]]) -> None:
    """INSERT many new rows, each a dict by field attname: one statement, run by executemany.

    What ``QuerySet.bulk_create`` stores (a field a row leaves out gets its default;
    an ``auto_now``/``auto_now_add`` datetime the time of the call), without a model
    instance per row or the SQL it compiles per value of every row -- which, for the
    rows of a reconnect storm, cost more than the insert itself.
    """
    connection = connections[router.db_for_write(model)]
    fields, sql = insert_statement(model, connection)
    now = timezone.now()
    columns = []  # (attname taken from a row, or None; what a row without it gets; preparer)
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            if not isinstance(field, models.DateTimeField):
                raise TypeError(f"insert_rows() sets only a DateTimeField as auto_now, not {field}")
            # As pre_save() on an insert: the time, whatever the row says.
            columns.append((None, lambda: now, value_preparer(field, connection)))
        else:
            columns.append((field.attname, field.get_default, value_preparer(field, connection)))
    params = [
        tuple(
            prepare(row[attname] if attname in row else missing())
            for attname, missing, prepare in columns
        )
        for row in rows
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def update_rows(model: type[Model], field_names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """UPDATE many rows, each to its own values: one statement, run by executemany.

    Each row is ``(pk, value, ...)``, its values in the order of ``field_names``.
    What ``QuerySet.bulk_update`` does, without the model instances it takes or the
    CASE expression it builds per row and field -- which, for a few hundred charge
    points, cost more than the update.
    """
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(meta.db_table),
        ", ".join(f"{quote(field.column)} = %s" for field in fields),
        quote(meta.pk.column),
    )
    preparers = [value_preparer(field, connection) for field in fields]
    params = [
        (*(prepare(value) for prepare, value in zip(preparers, row[1:], strict=True)), row[0])
        for row in rows
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def instance_rows(instances: Collection[Model], field_names: Sequence[str]) -> list[tuple]:
    """``update_rows`` rows from model instances: ``(pk, value, ...)`` of ``field_names``."""
    if not instances:
        return []
    meta = next(iter(instances))._meta
    attnames = [meta.get_field(name).attname for name in field_names]
    return [(instance.pk, *(getattr(instance, name) for name in attnames)) for instance in instances]


#: The session's database work (one message's worth per call), batched across sessions.
shared_transactions: GroupCommit = GroupCommit(_run_each)


async def run_batched(func: Callable[..., Result], *args, **kwargs) -> Result:
    """Run a synchronous database function in the next shared batch and return its result.

    Like ``database_sync_to_async(func)(*args, **kwargs)``: the same thread, the same
    result or exception, and an atomic unit of work (a savepoint); but many sessions'
    calls share one thread hop and one commit.
    """
    return await shared_transactions.submit((func, args, kwargs))
