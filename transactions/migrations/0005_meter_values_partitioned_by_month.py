"""PostgreSQL only: MeterValue becomes a table partitioned by month of its timestamp.

Meter values are the one table that grows without end. Partitioned by month,
pruning a month is a DROP TABLE of its partition (milliseconds, no dead rows for
VACUUM), and reads of recent data touch only recent partitions' indexes, however
many months the table holds. ``transactions.partitions`` creates the months ahead
(``manage.py prune`` does, daily); rows of a month without a partition wait in
the default partition and move to their month's partition when it is created.

What changes in the table: the primary key is (id, timestamp), as PostgreSQL
requires the partition column in every unique index (the meter values' idempotency
keys, transactions 0008, include the timestamp too); ids still come from one
sequence (an identity column cannot be partitioned before PostgreSQL 17), so they
stay unique and increasing. Indexes and foreign keys keep their names. Existing
rows are copied into the partitions: on a large table, this migration takes as
long as copying it (docs/deployment.md, "Upgrading").

SQLite keeps the plain table. Not reversible.
"""

from datetime import datetime, timezone

from django.db import migrations

TABLE = "transactions_metervalue"
OLD = "transactions_metervalue_unpartitioned"
#: Months ahead of the current one that get a partition now.
MONTHS_AHEAD = 2


def month_start(moment: datetime, months_later: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months_later
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def partition_by_month(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] == "p":
            return
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = %s AND indexname <> %s",
            [TABLE, f"{TABLE}_pkey"],
        )
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(f"SELECT min(timestamp), max(timestamp), max(id) FROM {TABLE}")
        oldest, newest, last_id = cursor.fetchone()

        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey")
        cursor.execute(f"ALTER TABLE {OLD} ALTER COLUMN id DROP IDENTITY")
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (timestamp)"
        )
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        if last_id is not None:
            cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s)", [last_id])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, timestamp)")
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        now = datetime.now(timezone.utc)
        month = month_start(min(oldest or now, now))
        last = month_start(max(newest or now, now), MONTHS_AHEAD)
        while month <= last:
            following = month_start(month, 1)
            cursor.execute(  # DDL takes no bound parameters: the bounds are written out
                f"CREATE TABLE {TABLE}_{month:%Y_%m} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
            )
            month = following
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        cursor.execute(f"DROP TABLE {OLD}")
        # The same indexes and foreign keys, by the same names (Django's migrations
        # find them by name), now on the partitioned table and each partition.
        for indexdef in indexes:
            cursor.execute(indexdef)
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")


class Migration(migrations.Migration):
    dependencies = [("transactions", "0004_meter_value_received_at_brin")]

    operations = [migrations.RunPython(partition_by_month, elidable=False)]
