"""PostgreSQL only: a BRIN index of MeterValue.received_at, for pruning and time-range reads.

Rows arrive in received_at order, so a BRIN index (a few kilobytes per gigabyte of
table) finds the block ranges of any time window: ``manage.py prune`` finds the
oldest rows of a month it cannot drop whole with it, and reads of the last hour
across all charge points touch only the newest blocks. Migration 0005 keeps it on
every monthly partition. SQLite has no BRIN: there the prune reads in rowid order,
which is received_at order, and stops at the first batch it needs.
"""

from django.db import migrations

INDEX = "transactions_metervalue_received_at_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON transactions_metervalue "
            "USING brin (received_at) WITH (pages_per_range = 32)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("transactions", "0003_meter_value_index_by_time")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
