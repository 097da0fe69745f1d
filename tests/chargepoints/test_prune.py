"""``manage.py prune``: meter values, status history and the command log past retention go, in batches."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints.models import ChargePoint, ChargePointCommand, StatusNotification
from tests.conftest import server_env
from tests.levity_site.test_configuration import run
from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def retention(settings):
    def set_days(meter_values: int, status: int, commands: int) -> None:
        settings.LEVITY_METER_VALUE_RETENTION_DAYS = meter_values
        settings.LEVITY_STATUS_RETENTION_DAYS = status
        settings.LEVITY_COMMAND_RETENTION_DAYS = commands

    return set_days


@pytest.fixture
def charge_point():
    return ChargePoint.objects.create(charge_point_id="CP-PRUNE")


def rows_aged(charge_point, *days_ago: float, transaction=None) -> None:
    """One meter value, status notification and command written ``days`` ago, for each of ``days_ago``."""
    now = timezone.now()
    for days in days_ago:
        written = now - timedelta(days=days)
        MeterValue.objects.create(
            charge_point=charge_point, connector_id=1, transaction=transaction,
            timestamp=written, received_at=written, value=str(days),
        )  # fmt: skip
        StatusNotification.objects.create(
            charge_point=charge_point, connector_id=1, status="Available", error_code="NoError",
            received_at=written,
        )  # fmt: skip
        ChargePointCommand.objects.create(
            charge_point=charge_point, action="Reset", timeout=30, created_at=written
        )


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue()


def ages(model, field: str) -> list[int]:
    now = timezone.now()
    return sorted(
        round((now - t).total_seconds() / 86400) for t in model.objects.values_list(field, flat=True)
    )


def test_rows_past_retention_are_deleted_and_newer_ones_kept(retention, charge_point):
    retention(30, 30, 30)
    rows_aged(charge_point, 400, 31, 29, 1)
    output = prune()
    assert ages(MeterValue, "received_at") == [1, 29]
    assert ages(StatusNotification, "received_at") == [1, 29]
    assert ages(ChargePointCommand, "created_at") == [1, 29]
    assert "meter values: deleted 2 rows written before" in output
    assert "status history: deleted 2 rows" in output and "command log: deleted 2 rows" in output


def test_each_kind_has_its_own_retention_and_zero_keeps_for_ever(retention, charge_point):
    retention(10, 0, 100)
    rows_aged(charge_point, 200, 50, 5)
    output = prune()
    assert ages(MeterValue, "received_at") == [5]
    assert ages(StatusNotification, "received_at") == [5, 50, 200]
    assert ages(ChargePointCommand, "created_at") == [5, 50]
    assert "status history: kept for ever (LEVITY_STATUS_RETENTION_DAYS=0)" in output


def test_retention_is_off_by_default(charge_point):
    rows_aged(charge_point, 5000)
    prune()
    assert (
        MeterValue.objects.count()
        == StatusNotification.objects.count()
        == ChargePointCommand.objects.count()
        == 1
    )


def test_a_transaction_keeps_its_totals_when_its_meter_values_go(retention, charge_point):
    retention(30, 30, 30)
    started = timezone.now() - timedelta(days=60)
    tx = Transaction.objects.create(
        charge_point=charge_point, connector_id=1, id_tag="CARD", id_tag_status="Accepted",
        meter_start=100, start_timestamp=started, meter_stop=5100, stop_timestamp=started,
        energy_wh=5000,
    )  # fmt: skip
    rows_aged(charge_point, 60, transaction=tx)
    prune()
    assert not MeterValue.objects.exists()
    assert Transaction.objects.get(pk=tx.pk).energy_wh == 5000


def test_rows_are_deleted_in_batches_of_the_given_size(retention, charge_point):
    retention(30, 0, 0)
    rows_aged(charge_point, *range(31, 36))  # five meter values past retention
    with CaptureQueriesContext(connection) as queries:
        output = prune("--batch-size", "2")
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "transactions_metervalue"')]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert all("LIMIT 2" in sql for sql in deletes)
    assert not MeterValue.objects.exists()
    assert "meter values: deleted 5 rows" in output


def test_dry_run_counts_and_deletes_nothing(retention, charge_point):
    retention(30, 30, 30)
    rows_aged(charge_point, 40, 41, 2)
    output = prune("--dry-run")
    assert "meter values: 2 rows written before" in output and "would be deleted" in output
    assert MeterValue.objects.count() == 3


def test_a_batch_size_below_one_is_refused(retention):
    with pytest.raises(CommandError, match="--batch-size=0 must be at least 1"):
        prune("--batch-size", "0")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEVITY_RETENTION_DAYS", "a year", "is not a whole number"),
        ("LEVITY_METER_VALUE_RETENTION_DAYS", "-1", "must be at least 0"),
    ],
)
def test_a_malformed_retention_stops_start_up_naming_the_variable(tmp_path, name, value, message):
    result = run(["manage.py", "check"], server_env(tmp_path / "db.sqlite3", **{name: value}))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Levity configuration error: {name}") and message in line


def test_the_per_kind_retention_defaults_to_levity_retention_days(tmp_path):
    result = run(
        ["manage.py", "shell", "-c",
         "from django.conf import settings as s; print(s.LEVITY_METER_VALUE_RETENTION_DAYS, "
         "s.LEVITY_STATUS_RETENTION_DAYS, s.LEVITY_COMMAND_RETENTION_DAYS)"],
        server_env(tmp_path / "db.sqlite3", LEVITY_RETENTION_DAYS="90", LEVITY_COMMAND_RETENTION_DAYS="7"),
    )  # fmt: skip
    assert result.stdout.splitlines()[-1].split() == ["90", "90", "7"], result.stderr
