"""PostgreSQL only: a BRIN index of StatusNotification.received_at, for ``manage.py prune``.

The same reasoning as transactions' 0004 (MeterValue): rows arrive in received_at
order, so a BRIN index finds any time window's blocks for a few kilobytes.
"""

from django.db import migrations

INDEX = "chargepoints_statusnotification_received_at_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON chargepoints_statusnotification "
            "USING brin (received_at) WITH (pages_per_range = 32)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("chargepoints", "0004_server_processes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
