from __future__ import annotations

import django_filters

from ..models import ChargePoint, ChargePointCommand, CommandStatus, Connector, SecurityEvent
from .base import ChargePointRowFilter, DateTimeFilter


class ChargePointFilter(django_filters.FilterSet):
    class Meta:
        model = ChargePoint
        fields = [
            "is_connected",
            "registration_status",
            "charge_point_vendor",
            "charge_point_model",
            "firmware_version",
        ]


class ConnectorFilter(ChargePointRowFilter):
    class Meta:
        model = Connector
        fields = ["charge_point", "connector_id", "status", "error_code"]


class CommandFilter(ChargePointRowFilter):
    status = django_filters.ChoiceFilter(choices=CommandStatus.choices)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ChargePointCommand
        fields = ["charge_point", "action", "status", "requested_by"]


class SecurityEventFilter(ChargePointRowFilter):
    received_after = DateTimeFilter(field_name="received_at", lookup_expr="gte")

    class Meta:
        model = SecurityEvent
        fields = ["charge_point", "type"]
