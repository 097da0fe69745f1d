"""Who stopped a transaction, the stops a charge point's own stop superseded, and
transactions rebuilt from a StopTransaction Levity never saw start."""

import django.db.models.deletion
from django.db import migrations, models

STOPPED_BY = [
    ("charge_point", "charge point (StopTransaction)"),
    ("server", "server (closed on its own authority)"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("chargepoints", "0004_server_processes"),
        ("transactions", "0006_energy_as_64_bit_integers"),
    ]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="stopped_by",
            field=models.CharField(
                blank=True,
                choices=STOPPED_BY,
                help_text="Whose stop this is; empty while active (and for stops stored before it was recorded).",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="transaction",
            name="rebuilt",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Rebuilt from a StopTransaction for a transaction Levity never saw start: "
                    "start time and meter start are the earliest the stop carries."
                ),
            ),
        ),
        migrations.AddField(
            model_name="transaction",
            name="reported_transaction_id",
            field=models.BigIntegerField(
                blank=True,
                help_text="For a rebuilt transaction: the transactionId the charge point's stop named.",
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="transaction",
            constraint=models.UniqueConstraint(
                condition=models.Q(("reported_transaction_id__isnull", False)),
                fields=("charge_point", "reported_transaction_id"),
                name="unique_rebuilt_transaction",
            ),
        ),
        migrations.CreateModel(
            name="SupersededStop",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("stopped_by", models.CharField(blank=True, choices=STOPPED_BY, max_length=16)),
                ("meter_stop", models.BigIntegerField(blank=True, help_text="Wh", null=True)),
                ("stop_timestamp", models.DateTimeField()),
                ("stop_reason", models.CharField(blank=True, max_length=20)),
                ("energy_wh", models.BigIntegerField(blank=True, null=True, verbose_name="energy (Wh)")),
                ("stop_received_at", models.DateTimeField(blank=True, null=True)),
                ("superseded_at", models.DateTimeField(help_text="When the charge point's stop replaced it.")),
                (
                    "transaction",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="superseded_stops",
                        to="transactions.transaction",
                    ),
                ),
            ],
            options={"ordering": ["transaction", "superseded_at", "id"]},
        ),
    ]
