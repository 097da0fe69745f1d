"""Migrations that change stored data: what they do to rows stored before them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.db import connection

from chargepoints.models import ChargePoint
from transactions.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True)


def at(hour: int) -> object:
    return connection.ops.adapt_datetimefield_value(datetime(2025, 3, 1, hour, tzinfo=timezone.utc))


def test_0009_flags_the_stops_already_stored_before_their_starts():
    cp = ChargePoint.objects.create(charge_point_id="MIGRATION-0009")
    call_command("migrate", "transactions", "0008", verbosity=0)
    try:
        with connection.cursor() as cursor:
            for pk, connector, stop_hour in [(900001, 1, 9), (900002, 2, 11)]:  # start at 10:00
                cursor.execute(
                    "INSERT INTO transactions_transaction (id, charge_point_id, connector_id, id_tag, "
                    "id_tag_status, meter_start, start_timestamp, meter_stop, stop_timestamp, stop_reason, "
                    "stop_id_tag, energy_wh, meter_stop_below_start, received_at, stopped_by, rebuilt) "
                    "VALUES (%s, %s, %s, 'TAG', 'Accepted', 0, %s, 10, %s, 'Local', '', 10, %s, %s, "
                    "'charge_point', %s)",
                    [pk, cp.pk, connector, at(10), at(stop_hour), False, at(10), False],
                )
    finally:
        call_command("migrate", "transactions", verbosity=0)
    flags = dict(Transaction.objects.filter(charge_point=cp).values_list("pk", "stop_before_start"))
    assert flags == {900001: True, 900002: False}
