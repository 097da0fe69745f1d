from __future__ import annotations

import django_filters

from chargepoints.api.base import ChargePointRowFilter, DateTimeFilter, IntegerFilter

from ..models import MeterValue, Transaction


class TransactionFilter(ChargePointRowFilter):
    active = django_filters.BooleanFilter(
        field_name="stop_timestamp", lookup_expr="isnull", label="Still running"
    )
    started_after = DateTimeFilter(field_name="start_timestamp", lookup_expr="gte")
    started_before = DateTimeFilter(field_name="start_timestamp", lookup_expr="lt")

    class Meta:
        model = Transaction
        fields = ["charge_point", "connector_id", "id_tag", "stop_reason", "active"]


class MeterValueFilter(ChargePointRowFilter):
    transaction = IntegerFilter(field_name="transaction_id")
    timestamp_after = DateTimeFilter(field_name="timestamp", lookup_expr="gte")
    timestamp_before = DateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = MeterValue
        fields = ["charge_point", "transaction", "connector_id", "measurand", "phase", "context"]
