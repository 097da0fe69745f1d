from __future__ import annotations

from rest_framework import serializers

from ..models import ChargePoint, ChargePointCommand, ConfigurationKey, Connector, SecurityEvent
from ..services import BOOT_IDENTITY_FIELDS, STATUS_FIELDS
from ..session.commands import ACTIONS
from .base import ChargePointRowSerializer


class ConnectorSerializer(ChargePointRowSerializer):
    class Meta:
        model = Connector
        fields = [
            "charge_point",
            "connector_id",
            *STATUS_FIELDS,
            "status_timestamp",
            "updated_at",
        ]


class NestedConnectorSerializer(ConnectorSerializer):
    class Meta(ConnectorSerializer.Meta):
        fields = [f for f in ConnectorSerializer.Meta.fields if f != "charge_point"]


class ConfigurationKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfigurationKey
        fields = ["key", "value", "readonly", "updated_at"]


class ChargePointSerializer(serializers.ModelSerializer):
    connectors = NestedConnectorSerializer(many=True, read_only=True)

    class Meta:
        model = ChargePoint
        fields = [
            "charge_point_id",
            "registration_status",
            "security_profile",
            "is_connected",
            *BOOT_IDENTITY_FIELDS,
            "connected_at",
            "disconnected_at",
            "last_seen_at",
            "last_boot_at",
            "last_heartbeat_at",
            "remote_address",
            "created_at",
            "connectors",
        ]


class ChargePointDetailSerializer(ChargePointSerializer):
    configuration_keys = ConfigurationKeySerializer(many=True, read_only=True)

    class Meta(ChargePointSerializer.Meta):
        fields = [*ChargePointSerializer.Meta.fields, "configuration_keys"]


class CommandSerializer(ChargePointRowSerializer):
    class Meta:
        model = ChargePointCommand
        fields = [
            "id",
            "charge_point",
            "action",
            "message_id",
            "request",
            "status",
            "response",
            "response_status",
            "error_code",
            "error_description",
            "error_details",
            "timeout",
            "requested_by",
            "created_at",
            "sent_at",
            "answered_at",
            "duration_ms",
            "password_rotation",
            "password_rotation_at",
        ]


class SecurityEventSerializer(ChargePointRowSerializer):
    class Meta:
        model = SecurityEvent
        fields = ["id", "charge_point", "type", "timestamp", "tech_info", "received_at"]


class CommandRequestSerializer(serializers.Serializer):
    """What POST /api/v1/charge-points/{id}/commands takes."""

    action = serializers.CharField(help_text="The OCPP 1.6 action: " + ", ".join(sorted(ACTIONS)) + ".")
    payload = serializers.JSONField(
        required=False, default=dict, help_text="The OCPP 1.6 JSON payload (camelCase)."
    )
    timeout = serializers.FloatField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Seconds to wait for the answer (default LEVITY_CALL_TIMEOUT).",
    )


class CommandErrorSerializer(serializers.Serializer):
    """The body of a 409, 502 or 504 answer: the error and the stored command."""

    error = serializers.CharField()
    detail = serializers.CharField()
    command = CommandSerializer()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    ocpp_error_code = serializers.CharField(required=False)
