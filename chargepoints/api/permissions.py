from __future__ import annotations

from rest_framework.permissions import BasePermission

from ..models import ApiToken, ApiTokenScope


class IsTokenOrStaff(BasePermission):
    """A valid API token, or a staff user logged in to the admin (for the interactive docs)."""

    message = "An API token or a staff login is required."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class CanSendCommands(IsTokenOrStaff):
    """Tokens of the "commands" scope; staff users with the 'add charge point command' permission."""

    message = (
        "Sending commands needs an API token of the 'commands' scope "
        "or the 'add charge point command' permission."
    )

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            return request.auth.scope == ApiTokenScope.COMMANDS
        return super().has_permission(request, view) and request.user.has_perm(
            "chargepoints.add_chargepointcommand"
        )


class CanManageChargePoints(IsTokenOrStaff):
    """Accepting charge points and managing their credentials: tokens of the "commands"
    scope; staff users with the 'change charge point' permission."""

    message = (
        "Managing charge points needs an API token of the 'commands' scope "
        "or the 'change charge point' permission."
    )

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            return request.auth.scope == ApiTokenScope.COMMANDS
        return super().has_permission(request, view) and request.user.has_perm(
            "chargepoints.change_chargepoint"
        )
