"""The charge point part of /api/v1/: read endpoints, and the command endpoint.

The command endpoint is an async view (adrf): it waits for the charge point's
answer on the event loop, holding no thread, so it never starves the sessions'
own database work.
"""

from __future__ import annotations

from adrf.views import APIView as AsyncAPIView
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.filters import SearchFilter
from rest_framework.response import Response
from rest_framework.reverse import reverse

from ..models import ApiToken, ChargePoint, ChargePointCommand, CommandStatus, Connector, SecurityEvent
from ..session import commands
from .base import ChargePointRowViewSet
from .filters import ChargePointFilter, CommandFilter, ConnectorFilter, SecurityEventFilter
from .permissions import CanSendCommands
from .serializers import (
    ChargePointDetailSerializer,
    ChargePointSerializer,
    CommandErrorSerializer,
    CommandRequestSerializer,
    CommandSerializer,
    ConnectorSerializer,
    ErrorSerializer,
    SecurityEventSerializer,
)

#: How a stored command's status answers the HTTP request (answered commands are 201).
ERROR_RESPONSES: dict[str, tuple[int, str]] = {
    CommandStatus.OFFLINE: (status.HTTP_409_CONFLICT, "not_connected"),
    CommandStatus.TIMEOUT: (status.HTTP_504_GATEWAY_TIMEOUT, "timeout"),
    CommandStatus.CALLERROR: (status.HTTP_502_BAD_GATEWAY, "callerror"),
    CommandStatus.FAILED: (status.HTTP_502_BAD_GATEWAY, "failed"),
}


class ChargePointViewSet(viewsets.ReadOnlyModelViewSet):
    """Charge points, with their connectors (and configuration keys in the detail)."""

    lookup_field = "charge_point_id"
    lookup_value_regex = "[^/]+"
    filterset_class = ChargePointFilter
    filter_backends = [*viewsets.ReadOnlyModelViewSet.filter_backends, SearchFilter]
    search_fields = ["charge_point_id", "charge_point_serial_number", "charge_box_serial_number"]
    ordering_fields = ["charge_point_id", "last_seen_at", "created_at"]

    def get_queryset(self):
        queryset = ChargePoint.objects.prefetch_related(
            Prefetch("connectors", queryset=Connector.objects.order_by("connector_id"))
        )
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("configuration_keys")
        return queryset

    def get_serializer_class(self):
        return ChargePointDetailSerializer if self.action == "retrieve" else ChargePointSerializer


class ConnectorViewSet(ChargePointRowViewSet):
    """Connectors and their last reported status (connector 0 is the charge point as a whole)."""

    model = Connector
    serializer_class = ConnectorSerializer
    filterset_class = ConnectorFilter
    ordering_fields = ["connector_id", "updated_at", "status_timestamp"]


class CommandViewSet(ChargePointRowViewSet):
    """Commands sent to charge points, newest first, with their answers."""

    model = ChargePointCommand
    serializer_class = CommandSerializer
    filterset_class = CommandFilter
    ordering_fields = ["created_at", "duration_ms"]


class SecurityEventViewSet(ChargePointRowViewSet):
    """Security events charge points reported (SecurityEventNotification), newest first."""

    model = SecurityEvent
    serializer_class = SecurityEventSerializer
    filterset_class = SecurityEventFilter
    ordering_fields = ["received_at", "timestamp"]


class ChargePointCommandView(AsyncAPIView):
    permission_classes = [CanSendCommands]

    @extend_schema(
        operation_id="charge_points_commands_create",
        summary="Send an OCPP 1.6 command to a connected charge point",
        description=(
            "Validates the payload against the OCPP 1.6 schema of the action, sends it to "
            "the charge point (waiting for an earlier command to it to finish first), and "
            "answers with the stored command. `status` is `accepted` or `rejected` when the "
            "charge point answered (HTTP 201); other outcomes are errors whose body "
            "includes the stored command."
        ),
        request=CommandRequestSerializer,
        responses={
            201: OpenApiResponse(CommandSerializer, "The charge point answered."),
            401: OpenApiResponse(ErrorSerializer, "No valid token."),
            404: OpenApiResponse(ErrorSerializer, "No such charge point."),
            409: OpenApiResponse(CommandErrorSerializer, "The charge point is not connected."),
            422: OpenApiResponse(ErrorSerializer, "Unknown action or invalid payload/timeout."),
            502: OpenApiResponse(
                CommandErrorSerializer,
                "The charge point answered with a CALLERROR (error `callerror`, its code, "
                "description and details in the command), or with an invalid answer "
                "(error `failed`).",
            ),
            504: OpenApiResponse(CommandErrorSerializer, "No answer within the timeout."),
        },
        examples=[
            OpenApiExample(
                "Remote start",
                request_only=True,
                value={
                    "action": "RemoteStartTransaction",
                    "payload": {"connectorId": 1, "idTag": "RFID123"},
                    "timeout": 30,
                },
            ),
            OpenApiExample(
                "Soft reset", request_only=True, value={"action": "Reset", "payload": {"type": "Soft"}}
            ),
        ],
        tags=["commands"],
    )
    async def post(self, request, charge_point_id: str) -> Response:
        serializer = CommandRequestSerializer(data=request.data)
        if not serializer.is_valid():
            field, messages = next(iter(serializer.errors.items()))
            return _error(422, "invalid_request", f"{field}: {messages[0]}", field=field)
        data = serializer.validated_data
        token = request.auth if isinstance(request.auth, ApiToken) else None
        user = request.user if token is None else None
        try:
            command = await commands.send_command(
                charge_point_id,
                data["action"],
                data["payload"],
                timeout=data["timeout"],
                requested_by=token.requested_by if token else f"user:{request.user.get_username()}",
                user_id=user.pk if user is not None else None,
                api_token_id=token.pk if token else None,
            )
        except commands.UnknownChargePoint as exc:
            return _error(404, "not_found", str(exc))
        except commands.InvalidCommand as exc:
            extra = {"field": exc.field} if exc.field else {}
            if exc.ocpp_error_code:
                extra["ocpp_error_code"] = exc.ocpp_error_code
            error = "invalid_action" if exc.field == "action" else "invalid_payload"
            return _error(422, error, str(exc), **extra)
        body = CommandSerializer(command).data
        if command.status in ERROR_RESPONSES:
            http_status, error = ERROR_RESPONSES[command.status]
            detail = command.error_description
            if command.status == CommandStatus.CALLERROR:
                detail = f"The charge point answered CALLERROR {command.error_code}: {detail}"
            return Response({"error": error, "detail": detail, "command": body}, http_status)
        location = reverse("api-v1:command-detail", args=[command.pk], request=request)
        return Response(body, status.HTTP_201_CREATED, headers={"Location": location})


def _error(http_status: int, error: str, detail: str, **extra) -> Response:
    return Response({"error": error, "detail": detail, **extra}, status=http_status)
