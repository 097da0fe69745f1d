"""transaction_recorded: sent inside the write, for a new start and a first stop only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import transaction as db_transaction

from chargepoints.models import ChargePoint
from transactions import services
from transactions.models import Transaction
from transactions.signals import transaction_recorded

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2025, 3, 1, 10, tzinfo=timezone.utc)


@pytest.fixture
def recorded():
    events: list[tuple[int, str, bool]] = []

    def receiver(sender, transaction, event, request, **kwargs):
        events.append((transaction.pk, event, db_transaction.get_connection().in_atomic_block))

    transaction_recorded.connect(receiver, dispatch_uid="tests.transactions.recorded")
    yield events
    transaction_recorded.disconnect(dispatch_uid="tests.transactions.recorded")


@pytest.fixture
def cp() -> ChargePoint:
    return ChargePoint.objects.create(charge_point_id="CP-SIGNALS")


def start(cp: ChargePoint) -> services.TransactionStart:
    return services.TransactionStart(cp.pk, 1, "CARD-1", 100, T0, None, T0, {"status": "Accepted"})


def stop(cp: ChargePoint, tx_id: int, meter_stop: int = 200, minutes: int = 30) -> services.TransactionStop:
    return services.TransactionStop(
        cp.pk,
        tx_id,
        meter_stop,
        T0 + timedelta(minutes=minutes),
        None,
        None,
        None,
        T0,
        {"status": "Accepted"},
    )


def test_a_new_start_is_sent_inside_its_transaction_and_a_repeated_one_is_not(recorded, cp):
    first = services.start_transaction(start(cp))
    again = services.start_transaction(start(cp))
    assert again.transaction_id == first.transaction_id
    assert recorded == [(first.transaction_id, "started", True)]


def test_only_the_first_stop_is_sent(recorded, cp):
    tx_id = services.start_transaction(start(cp)).transaction_id
    with db_transaction.atomic():
        services.stop_transactions([stop(cp, tx_id)])
    with db_transaction.atomic():
        services.stop_transactions([stop(cp, tx_id), stop(cp, tx_id, 300, 40), stop(cp, tx_id + 1)])
    assert recorded == [(tx_id, "started", True), (tx_id, "stopped", True)]


def test_a_receiver_error_fails_the_start(cp):
    def failing(sender, **kwargs):
        raise RuntimeError("outbox unavailable")

    transaction_recorded.connect(failing, dispatch_uid="tests.transactions.failing")
    try:
        with pytest.raises(RuntimeError, match="outbox unavailable"):
            services.start_transaction(start(cp))
    finally:
        transaction_recorded.disconnect(dispatch_uid="tests.transactions.failing")
    assert not Transaction.objects.exists()
