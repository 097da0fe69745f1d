"""The idempotency key of a dated StatusNotification: (charge point, connector,
timestamp, status, error code). Duplicates stored before are deleted first,
keeping the first row of each key."""

from django.db import migrations, models

DELETE_DUPLICATES = """
DELETE FROM chargepoints_statusnotification
WHERE timestamp IS NOT NULL AND id NOT IN (
    SELECT MIN(id) FROM chargepoints_statusnotification WHERE timestamp IS NOT NULL
    GROUP BY charge_point_id, connector_id, timestamp, status, error_code
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("chargepoints", "0008_apitoken_scope"),
    ]

    operations = [
        migrations.RunSQL(DELETE_DUPLICATES, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="statusnotification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("timestamp__isnull", False)),
                fields=("charge_point", "connector_id", "timestamp", "status", "error_code"),
                name="unique_status_notification",
            ),
        ),
    ]
