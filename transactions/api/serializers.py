from __future__ import annotations

from rest_framework import serializers

from chargepoints.api.base import ChargePointRowSerializer

from ..models import MeterValue, Transaction


class TransactionSerializer(ChargePointRowSerializer):
    transaction_id = serializers.IntegerField(source="pk", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Transaction
        fields = [
            "transaction_id",
            "charge_point",
            "connector_id",
            "id_tag",
            "id_tag_status",
            "reservation_id",
            "meter_start",
            "start_timestamp",
            "meter_stop",
            "stop_timestamp",
            "stop_reason",
            "stop_id_tag",
            "energy_wh",
            "meter_stop_below_start",
            "stop_before_start",
            "stopped_by",
            "rebuilt",
            "reported_transaction_id",
            "is_active",
            "received_at",
            "stop_received_at",
        ]


class MeterValueSerializer(ChargePointRowSerializer):
    transaction_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = MeterValue
        fields = [
            "id",
            "charge_point",
            "connector_id",
            "transaction_id",
            "timestamp",
            "received_at",
            "value",
            "measurand",
            "phase",
            "unit",
            "context",
            "location",
            "format",
            "normalized_value",
            "normalized_unit",
        ]
