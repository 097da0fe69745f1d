"""Retention: the rows that grow without end, and deleting those older than their settings allow.

Meter values, the connector status history and the command log grow with every
message; charge points, connectors, transactions and ID tags do not, and are never
pruned (a transaction keeps its meterStart, meterStop and energy when its samples
go). Rows are deleted in batches, each its own short transaction, so a prune never
holds SQLite's write lock, or PostgreSQL row locks, for long while the server writes.
On PostgreSQL, meter values are partitioned by month (transactions.partitions): the
months wholly past retention are dropped, and only the rest of the boundary month
is deleted row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Subquery

from chargepoints.models import ChargePointCommand, StatusNotification
from transactions import partitions
from transactions.models import MeterValue


@dataclass(frozen=True)
class GrowingTable:
    """One kind of row that ``prune`` deletes once it is older than ``days()``."""

    name: str
    model: type[models.Model]
    #: The time a row is aged by.
    time_field: str
    setting: str
    #: Partitioned by month on PostgreSQL (transactions.partitions).
    monthly_partitions: bool = False

    def days(self) -> int:
        return getattr(settings, self.setting)

    def older_than(self, cutoff: datetime) -> models.QuerySet:
        return self.model.objects.filter(**{f"{self.time_field}__lt": cutoff})  # type: ignore[attr-defined]  # each table's model has ``objects``


GROWING_TABLES = (
    # By the sample's own time, the column its monthly partitions are ranged by.
    GrowingTable(
        "meter values", MeterValue, "timestamp", "LEVITY_METER_VALUE_RETENTION_DAYS", monthly_partitions=True
    ),
    GrowingTable("status history", StatusNotification, "received_at", "LEVITY_STATUS_RETENTION_DAYS"),
    GrowingTable("command log", ChargePointCommand, "created_at", "LEVITY_COMMAND_RETENTION_DAYS"),
)


def cutoff_for(table: GrowingTable, now: datetime) -> datetime | None:
    """Rows written before this are past retention; None: ``table`` is kept for ever."""
    days = table.days()
    return now - timedelta(days=days) if days else None


def delete_before(table: GrowingTable, cutoff: datetime, *, batch_size: int) -> int:
    """Delete ``table``'s rows written before ``cutoff``, ``batch_size`` at a time; return how many.

    Each batch is one DELETE of the ids a LIMITed subquery picks: on PostgreSQL the
    BRIN index of the time column finds them, on SQLite the rowid order (which is
    the time order) does. The DELETE repeats the time condition, so that on a
    partitioned table it looks for those ids in the old partitions only.
    """
    total = 0
    while True:
        batch = table.older_than(cutoff).values("pk")[:batch_size]
        deleted, _ = table.older_than(cutoff).filter(pk__in=Subquery(batch)).delete()
        total += deleted
        if deleted < batch_size:
            return total


@dataclass
class Pruned:
    """What ``prune`` removed from one table."""

    dropped_partitions: list[partitions.Partition] = field(default_factory=list)
    deleted_rows: int = 0


def prune(table: GrowingTable, cutoff: datetime, *, batch_size: int) -> Pruned:
    """Remove ``table``'s rows written before ``cutoff``: whole monthly partitions, then row by row."""
    pruned = Pruned()
    if table.monthly_partitions and partitions.is_partitioned():
        pruned.dropped_partitions = partitions.drop_partitions_before(cutoff)
    pruned.deleted_rows = delete_before(table, cutoff, batch_size=batch_size)
    return pruned
