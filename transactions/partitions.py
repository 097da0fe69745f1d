"""PostgreSQL: MeterValue's monthly partitions (migration 0005), kept and dropped.

Each month of ``timestamp`` (the sample's time, UTC) has a partition ``transactions_metervalue_YYYY_MM``;
rows of a month without one wait in ``transactions_metervalue_default``.
``ensure_partitions`` creates the current month's and the next ones' partitions
(moving any rows of those months out of the default partition first);
``drop_partitions_before`` drops whole months past retention, which costs the same
for a month of a billion rows as for an empty one. ``manage.py prune`` calls both.
On SQLite the table is not partitioned and these functions are not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import connection, transaction

from transactions.models import MeterValue

TABLE = MeterValue._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
PARTITION_NAME = re.compile(rf"^{TABLE}_(\d{{4}})_(\d{{2}})$")
#: Months after the current one that ``ensure_partitions`` creates by default.
MONTHS_AHEAD = 2


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime
    #: PostgreSQL's estimate of its rows (pg_class.reltuples; None before the first ANALYZE).
    estimated_rows: int | None


def month_start(moment: datetime, months_later: int = 0) -> datetime:
    """The first instant (UTC) of ``moment``'s month, ``months_later`` months on."""
    moment = moment.astimezone(timezone.utc)
    index = moment.year * 12 + moment.month - 1 + months_later
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        return cursor.fetchone()[0] == "p"


def month_partitions() -> list[Partition]:
    """The monthly partitions, oldest first (not the default partition)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        found = cursor.fetchall()
    partitions = []
    for name, reltuples in found:
        match = PARTITION_NAME.match(name)
        if match:
            start = datetime(int(match[1]), int(match[2]), 1, tzinfo=timezone.utc)
            rows = int(reltuples) if reltuples >= 0 else None
            partitions.append(Partition(name, start, month_start(start, 1), rows))
    return sorted(partitions, key=lambda p: p.start)


def ensure_partitions(now: datetime, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of ``now``'s month and ``months_ahead`` more; return the new ones' names."""
    existing = {p.name for p in month_partitions()}
    created = []
    for offset in range(months_ahead + 1):
        start = month_start(now, offset)
        name = f"{TABLE}_{start:%Y_%m}"
        if name not in existing:
            create_partition(start)
            created.append(name)
    return created


def create_partition(start: datetime) -> None:
    """Create the partition of the month from ``start``, with that month's rows from the default partition.

    PostgreSQL refuses a new partition while the default partition holds rows of its
    range, so they move into it before it is attached, in one transaction.
    """
    end = month_start(start, 1)
    name = f"{TABLE}_{start:%Y_%m}"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= %s AND timestamp < %s "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        # DDL takes no bound parameters: the bounds are written out (ISO 8601, UTC).
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


def drop_partitions_before(cutoff: datetime) -> list[Partition]:
    """Drop the monthly partitions that end at or before ``cutoff``; return them."""
    dropped = []
    for partition in month_partitions():
        if partition.end <= cutoff:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {partition.name}")
            dropped.append(partition)
    return dropped
