"""The idempotency key of a sampled value: (transaction, timestamp, measurand, phase,
location, context), or per connector outside a transaction.

Duplicates stored before (a resent MeterValues) are deleted first, keeping the
first row of each key. The unique index replaces the index (transaction,
timestamp, measurand), whose columns it begins with.
"""

from django.db import migrations, models

DELETE_DUPLICATES = [
    """
DELETE FROM transactions_metervalue
WHERE transaction_id IS NOT NULL AND id NOT IN (
    SELECT MIN(id) FROM transactions_metervalue WHERE transaction_id IS NOT NULL
    GROUP BY transaction_id, timestamp, measurand, phase, location, context, unit
)
""",
    """
DELETE FROM transactions_metervalue
WHERE transaction_id IS NULL AND id NOT IN (
    SELECT MIN(id) FROM transactions_metervalue WHERE transaction_id IS NULL
    GROUP BY charge_point_id, connector_id, timestamp, measurand, phase, location, context, unit
)
""",
]


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0007_who_stopped_and_rebuilt_transactions"),
    ]

    operations = [
        migrations.RunSQL(DELETE_DUPLICATES, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="metervalue",
            constraint=models.UniqueConstraint(
                condition=models.Q(("transaction__isnull", False)),
                fields=("transaction", "timestamp", "measurand", "phase", "location", "context", "unit"),
                name="unique_transaction_meter_value",
            ),
        ),
        migrations.AddConstraint(
            model_name="metervalue",
            constraint=models.UniqueConstraint(
                condition=models.Q(("transaction__isnull", True)),
                fields=("charge_point", "connector_id", "timestamp", "measurand", "phase", "location", "context", "unit"),
                name="unique_connector_meter_value",
            ),
        ),
        migrations.RemoveIndex(
            model_name="metervalue",
            name="transaction_transac_8e6685_idx",
        ),
    ]
