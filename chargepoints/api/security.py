"""The API of a charge point's admission and credentials: what the admin does, for automation.

- ``POST charge-points/<id>/accept``: accept a Pending charge point (TriggerMessage
  BootNotification to a connected one).
- ``POST charge-points/<id>/security-profile`` ``{"security_profile": 0-3}``: for
  profiles 1 and 2 the answer holds a new password, shown this once.
- ``POST charge-points/<id>/password``: a new password, shown this once.
- ``POST charge-points/<id>/password-rotation``: a new password sent to the charge
  point in ChangeConfiguration AuthorizationKey (answered as the command endpoint).
"""

from __future__ import annotations

from adrf.views import APIView as AsyncAPIView
from channels.db import database_sync_to_async
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from .. import security
from ..models import ApiToken, ChargePoint, SecurityProfile
from ..session import commands, onboarding
from .permissions import CanManageChargePoints
from .serializers import CommandSerializer
from .views import ERROR_RESPONSES, _error


def _requester(request) -> dict:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    user = request.user if token is None else None
    return {
        "requested_by": token.requested_by if token else f"user:{request.user.get_username()}",
        "user_id": user.pk if user is not None else None,
        "api_token_id": token.pk if token else None,
    }


class AcceptView(AsyncAPIView):
    permission_classes = [CanManageChargePoints]

    @extend_schema(
        operation_id="charge_points_accept",
        summary="Accept a Pending charge point",
        request=None,
        responses=inline_serializer(
            "Acceptance",
            {
                "charge_point_id": serializers.CharField(),
                "registration_status": serializers.CharField(),
                "changed": serializers.BooleanField(),
                "trigger": CommandSerializer(allow_null=True),
            },
        ),
        tags=["security"],
    )
    async def post(self, request, charge_point_id: str) -> Response:
        if not await ChargePoint.objects.filter(charge_point_id=charge_point_id).aexists():
            return _error(404, "not_found", f"No charge point with id {charge_point_id!r}")
        accepted = await onboarding.accept([charge_point_id], **_requester(request))
        trigger = accepted[0].trigger if accepted else None
        return Response(
            {
                "charge_point_id": charge_point_id,
                "registration_status": "Accepted",
                "changed": bool(accepted),
                "trigger": CommandSerializer(trigger).data if trigger is not None else None,
            }
        )


class SecurityProfileRequest(serializers.Serializer):
    security_profile = serializers.ChoiceField(choices=SecurityProfile.choices)


PASSWORD_ANSWER = inline_serializer(
    "Credentials",
    {
        "charge_point_id": serializers.CharField(),
        "security_profile": serializers.IntegerField(allow_null=True),
        "password": serializers.CharField(
            required=False, help_text="Shown this once; only its hash is kept."
        ),
    },
)


class SecurityProfileView(AsyncAPIView):
    permission_classes = [CanManageChargePoints]

    @extend_schema(
        operation_id="charge_points_security_profile",
        summary="Set a charge point's security profile (1 and 2: with a new password)",
        request=SecurityProfileRequest,
        responses=PASSWORD_ANSWER,
        tags=["security"],
    )
    async def post(self, request, charge_point_id: str) -> Response:
        serializer = SecurityProfileRequest(data=request.data)
        if not serializer.is_valid():
            field, messages = next(iter(serializer.errors.items()))
            return _error(422, "invalid_request", f"{field}: {messages[0]}", field=field)
        profile = serializer.validated_data["security_profile"]
        try:
            password = await database_sync_to_async(security.set_security_profile)(charge_point_id, profile)
        except security.UnknownChargePoint as exc:
            return _error(404, "not_found", str(exc))
        body = {"charge_point_id": charge_point_id, "security_profile": profile}
        if password is not None:
            body["password"] = password
        return Response(body)


class PasswordView(AsyncAPIView):
    permission_classes = [CanManageChargePoints]

    @extend_schema(
        operation_id="charge_points_password",
        summary="Generate a new HTTP Basic password (the old one stops working)",
        request=None,
        responses={201: PASSWORD_ANSWER},
        tags=["security"],
    )
    async def post(self, request, charge_point_id: str) -> Response:
        try:
            password = await database_sync_to_async(security.set_password)(charge_point_id)
        except security.UnknownChargePoint as exc:
            return _error(404, "not_found", str(exc))
        row = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
        return Response(
            {
                "charge_point_id": charge_point_id,
                "security_profile": row.security_profile,
                "password": password,
            },
            status.HTTP_201_CREATED,
        )


class RotationRequest(serializers.Serializer):
    timeout = serializers.FloatField(required=False, allow_null=True, default=None)


class PasswordRotationView(AsyncAPIView):
    permission_classes = [CanManageChargePoints]

    @extend_schema(
        operation_id="charge_points_password_rotation",
        summary="Send a new password in ChangeConfiguration AuthorizationKey",
        description=(
            "The old password stays valid until the charge point has connected with the new "
            "one. Answered as the command endpoint; the key is masked in the stored command."
        ),
        request=RotationRequest,
        responses={201: CommandSerializer},
        tags=["security"],
    )
    async def post(self, request, charge_point_id: str) -> Response:
        serializer = RotationRequest(data=request.data)
        if not serializer.is_valid():
            field, messages = next(iter(serializer.errors.items()))
            return _error(422, "invalid_request", f"{field}: {messages[0]}", field=field)
        try:
            command = await onboarding.rotate_password(
                charge_point_id, timeout=serializer.validated_data["timeout"], **_requester(request)
            )
        except commands.UnknownChargePoint as exc:
            return _error(404, "not_found", str(exc))
        except onboarding.RotationRefused as exc:
            return _error(409, "no_password_profile", str(exc))
        except commands.InvalidCommand as exc:
            return _error(422, "invalid_request", str(exc))
        body = CommandSerializer(command).data
        if command.status in ERROR_RESPONSES:
            http_status, error = ERROR_RESPONSES[command.status]
            return Response(
                {"error": error, "detail": command.error_description, "command": body}, http_status
            )
        return Response(body, status.HTTP_201_CREATED)
