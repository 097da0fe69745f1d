"""meter_start, meter_stop and energy_wh as 64-bit integers (int4 overflows at 2.1 GWh)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0005_meter_values_partitioned_by_month"),
    ]

    operations = [
        migrations.AlterField(
            model_name="transaction",
            name="meter_start",
            field=models.BigIntegerField(help_text="Wh"),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="meter_stop",
            field=models.BigIntegerField(blank=True, help_text="Wh", null=True),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="energy_wh",
            field=models.BigIntegerField(
                blank=True, help_text="meter_stop - meter_start", null=True, verbose_name="energy (Wh)"
            ),
        ),
    ]
