"""Row helpers every write of the data layer uses: bulk INSERT and UPDATE of plain values.

What ``QuerySet.bulk_create`` and ``bulk_update`` store, without a model instance
per row or the SQL Django compiles per value: for the rows of a reconnect storm,
those cost more than the queries themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from functools import partial
from itertools import repeat
from typing import Any, cast

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone


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
            adapt_integer = partial(
                connection.ops.adapt_integerfield_value, internal_type=stored.get_internal_type()
            )

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


def insert_rows(
    model: type[Model], rows: Iterable[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """INSERT many new rows, each a dict by field attname: one statement, run by executemany.

    What ``QuerySet.bulk_create`` stores (a field a row leaves out gets its default;
    an ``auto_now``/``auto_now_add`` datetime the time of the call), without a model
    instance per row or the SQL it compiles per value of every row -- which, for the
    rows of a reconnect storm, cost more than the insert itself. A key that names
    no field of the model raises TypeError: nothing is dropped silently.
    """
    rows = list(rows)
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields, sql = insert_statement(model, connection)
    if ignore_conflicts:  # a row whose unique key is stored already is skipped (SQLite and PostgreSQL)
        sql += " ON CONFLICT DO NOTHING"
    known = {field.attname for field in fields}
    for row in rows:
        if not row.keys() <= known:
            unknown = ", ".join(sorted(row.keys() - known))
            raise TypeError(f"insert_rows(): {model.__name__} has no field {unknown}")
    now = timezone.now()
    columns = [_column(field, rows, now, connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(zip(*columns, strict=True)))


_MISSING = object()
_PLAIN_TEXT = {str, type(None)}


def _column(field: Field, rows: list[dict[str, Any]], now: datetime, connection: BaseDatabaseWrapper) -> list:
    """The values of ``field`` in ``rows``, prepared for ``connection``.

    A column at a time, so that what is the same for a whole column is decided once:
    text that needs no preparing is passed as it is, and each distinct datetime
    (the rows of one message share theirs) is prepared once.
    """
    prepare = value_preparer(field, connection)
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        if not isinstance(field, models.DateTimeField):
            raise TypeError(f"insert_rows() sets only a DateTimeField as auto_now, not {field}")
        return [prepare(now)] * len(rows)  # as pre_save() on an insert, whatever the row says
    values = list(map(dict.get, rows, repeat(field.attname), repeat(_MISSING)))
    if _MISSING in values:
        default = field.get_default
        values = [default() if value is _MISSING else value for value in values]
    kind = type(field)  # not a subclass, which may prepare its values in its own way
    if kind in _TEXT_FIELDS and set(map(type, values)) <= _PLAIN_TEXT:
        return values
    if kind is models.DateTimeField:
        # Equal datetimes are prepared alike: aware ones name the same instant.
        prepared = {value: prepare(value) for value in set(values)}
        return list(map(prepared.__getitem__, values))
    return list(map(prepare, values))


def update_rows(
    model: type[Model],
    field_names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    match: Sequence[str] = (),
) -> None:
    """UPDATE many rows, each to its own values: one statement, run by executemany.

    Each row is ``(pk, value, ..., matched, ...)``: its values in the order of
    ``field_names``, then the values the fields of ``match`` must still have for the
    row to be updated (a row changed meanwhile is left alone). What
    ``QuerySet.bulk_update`` does, without the model instances it takes or the CASE
    expression it builds per row and field.
    """
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    # Concrete fields (update_rows names no relation's reverse side).
    fields = [cast(Field, meta.get_field(name)) for name in field_names]
    matched = [cast(Field, meta.get_field(name)) for name in match]
    quote = connection.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {}".format(
        quote(meta.db_table),
        ", ".join(f"{quote(field.column)} = %s" for field in fields),
        " AND ".join(f"{quote(field.column)} = %s" for field in [meta.pk, *matched]),
    )
    preparers = [value_preparer(field, connection) for field in fields]
    if matched:
        matched_preparers = [value_preparer(field, connection) for field in matched]
        width = len(fields)
        params = [
            (
                *(prepare(value) for prepare, value in zip(preparers, row[1 : 1 + width], strict=True)),
                row[0],
                *(prepare(value) for prepare, value in zip(matched_preparers, row[1 + width :], strict=True)),
            )
            for row in rows
        ]
    else:
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
    attnames = [cast(Field, meta.get_field(name)).attname for name in field_names]
    return [(instance.pk, *(getattr(instance, name) for name in attnames)) for instance in instances]
