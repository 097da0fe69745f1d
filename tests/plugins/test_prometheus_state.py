"""TransactionTally: the energy totals and open transactions /metrics reports, kept
up to date by primary key, always equal what the database says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db.models import Sum

from chargepoints.models import ChargePoint
from plugins.prometheus_metrics.collectors import TransactionTally
from transactions.models import Transaction

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def start(charge_point, n: int, meter_start: int = 0) -> Transaction:
    return Transaction.objects.create(
        charge_point=charge_point,
        connector_id=1,
        id_tag="T",
        id_tag_status="Accepted",
        meter_start=meter_start,
        start_timestamp=T0 + timedelta(minutes=n),
    )


def stop(transaction: Transaction, meter_stop: int) -> None:
    transaction.meter_stop = meter_stop
    transaction.stop_timestamp = transaction.start_timestamp + timedelta(minutes=30)
    energy = meter_stop - transaction.meter_start
    transaction.energy_wh = energy if energy >= 0 else None
    transaction.save()


def database_says() -> tuple[dict[int, int], set[int]]:
    totals = dict(
        Transaction.objects.filter(energy_wh__gt=0)
        .values("charge_point_id")
        .annotate(total=Sum("energy_wh"))
        .values_list("charge_point_id", "total")
    )
    return totals, set(Transaction.objects.active().values_list("pk", flat=True))


def test_tally_follows_transactions_as_they_start_and_stop():
    one = ChargePoint.objects.create(charge_point_id="TALLY-1")
    two = ChargePoint.objects.create(charge_point_id="TALLY-2")
    tally = TransactionTally(margin=2)  # small, so that most rows get settled
    first, second = start(one, 1), start(one, 2, meter_start=100)
    stop(first, 1000)
    below = start(two, 3, meter_start=500)
    stop(below, 400)  # meterStop below meterStart: no energy
    for n in range(4, 8):
        stop(start(two, n), 10)
    assert tally.refresh() == database_says() == ({one.pk: 1000, two.pk: 40}, {second.pk})

    stop(second, 600)  # stopped after it was tallied as open
    third = start(two, 9)
    assert tally.refresh() == database_says() == ({one.pk: 1500, two.pk: 40}, {third.pk})

    for n in range(10, 15):  # the newest rows move past the margin
        stop(start(one, n), 1)
    stop(third, 70)
    assert tally.refresh() == database_says() == ({one.pk: 1505, two.pk: 110}, set())


def test_tally_forgets_an_open_transaction_that_was_deleted():
    charge_point = ChargePoint.objects.create(charge_point_id="TALLY-3")
    tally = TransactionTally(margin=0)
    orphan = start(charge_point, 1)
    assert tally.refresh()[1] == {orphan.pk}

    orphan.delete()

    assert tally.refresh()[1] == set()
