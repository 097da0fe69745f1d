"""MeterValue's indexes (and its idempotency key's) serve the queries that read a transaction's latest samples."""

from __future__ import annotations

import re

import pytest

from plugins.prometheus_metrics.collectors import _latest
from transactions.admin import latest_energy_register
from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db

TRANSACTION_INDEX = "unique_transaction_meter_value"


def searches_transaction_index(queryset) -> bool:
    """SQLite's plan reads MeterValue by a search of the index (it shortens long names)."""
    text = queryset.explain()
    return bool(
        re.search(r"SEARCH \S+ USING INDEX unique_transaction_meter_value \(transaction_id=\?\)", text)
    ) and not re.search(r"SCAN (U0|transactions_metervalue)\b", text)


def test_the_transaction_index_leads_with_the_transaction_and_the_time():
    [index] = [c for c in MeterValue._meta.constraints if c.name == TRANSACTION_INDEX]
    assert index.fields[:3] == ("transaction", "timestamp", "measurand")


@pytest.mark.sqlite
def test_admins_latest_energy_reading_searches_the_transaction_index():
    assert searches_transaction_index(Transaction.objects.annotate(latest=latest_energy_register()))


@pytest.mark.sqlite
def test_metrics_latest_sample_searches_the_transaction_index():
    assert searches_transaction_index(Transaction.objects.annotate(latest=_latest("Power.Active.Import")))


@pytest.mark.sqlite
def test_a_charge_points_samples_are_searched_by_its_own_index():
    text = MeterValue.objects.filter(charge_point_id=1).order_by("-timestamp").explain()
    assert "USING INDEX transaction_charge__78d122_idx (charge_point_id=?)" in text
