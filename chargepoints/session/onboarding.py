"""What an operator does to a charge point's admission, for the admin, the API and manage.py.

- **Accept** a Pending (or Rejected) charge point: it is marked Accepted, and a
  connected one is sent TriggerMessage BootNotification, so that its next boot is
  answered Accepted at once.
- **Rotate the password** (profiles 1 and 2): a new password goes out in
  ChangeConfiguration AuthorizationKey; the old one stays valid until the charge
  point has connected with the new one (chargepoints.session.authentication). The
  command is in the command log with the key masked, and its ``password_rotation``
  records each later step: pending (both valid), then completed (the charge point
  connected with the new one, the old one is refused), abandoned or superseded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from channels.db import database_sync_to_async

from .. import security
from ..models import ChargePoint, ChargePointCommand, CommandStatus, PasswordRotation, SecurityProfile
from . import commands

logger = logging.getLogger(__name__)


@dataclass
class Accepted:
    charge_point_id: str
    #: The TriggerMessage BootNotification sent, or None when it was not connected.
    trigger: ChargePointCommand | None


async def accept(
    charge_point_ids: list[str],
    *,
    requested_by: str,
    user_id: int | None = None,
    api_token_id: int | None = None,
) -> list[Accepted]:
    """Accept the charge points that are not Accepted yet; return what was done for each."""
    changed = await database_sync_to_async(security.accept_charge_points)(charge_point_ids)
    connected = set(await database_sync_to_async(_connected)(changed))
    accepted = []
    for charge_point_id in changed:
        logger.info("%s: registration accepted by %s", charge_point_id, requested_by)
        trigger = None
        if charge_point_id in connected:
            trigger = await commands.send_command(
                charge_point_id,
                "TriggerMessage",
                {"requestedMessage": "BootNotification"},
                requested_by=requested_by,
                user_id=user_id,
                api_token_id=api_token_id,
            )
        accepted.append(Accepted(charge_point_id, trigger))
    return accepted


def _connected(charge_point_ids: list[str]) -> list[str]:
    return list(
        ChargePoint.objects.filter(charge_point_id__in=charge_point_ids, is_connected=True).values_list(
            "charge_point_id", flat=True
        )
    )


class RotationRefused(commands.CommandError):
    """The charge point's security profile uses no password."""


#: Outcomes after which the charge point surely does not use the new password.
NOT_TAKEN = {CommandStatus.REJECTED, CommandStatus.CALLERROR, CommandStatus.OFFLINE, CommandStatus.FAILED}


async def rotate_password(
    charge_point_id: str,
    *,
    requested_by: str,
    user_id: int | None = None,
    api_token_id: int | None = None,
    timeout: float | None = None,
) -> ChargePointCommand:
    """Send a new password in ChangeConfiguration AuthorizationKey; return the stored command.

    The new password is valid beside the old one from before it is sent (the
    charge point may reconnect with it at once); when the charge point refuses it
    or cannot be reached, it is dropped again. After a timeout it stays valid: the
    charge point may have taken it.
    """
    profile = await database_sync_to_async(_effective_profile)(charge_point_id)
    if profile not in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC):
        raise RotationRefused(
            f"{charge_point_id} has security profile {profile}; only profiles 1 and 2 use a password"
        )
    password = await database_sync_to_async(security.begin_password_rotation)(charge_point_id)
    command = await commands.send_command(
        charge_point_id,
        "ChangeConfiguration",
        {"key": "AuthorizationKey", "value": password},
        timeout=timeout,
        requested_by=requested_by,
        user_id=user_id,
        api_token_id=api_token_id,
        password_rotation=PasswordRotation.PENDING,
    )
    if command.status in NOT_TAKEN:
        await database_sync_to_async(security.abandon_password_rotation)(
            charge_point_id, password, command.pk
        )
        logger.warning(
            "%s: password rotation abandoned (%s); the old password stays", charge_point_id, command.status
        )
    else:
        logger.info(
            "%s: new password sent (%s); the old one is valid until it reconnects with it",
            charge_point_id,
            command.status,
        )
    # The charge point may have reconnected with it already (completed).
    await command.arefresh_from_db(fields=["password_rotation", "password_rotation_at"])
    return command


def _effective_profile(charge_point_id: str) -> int:
    row = ChargePoint.objects.filter(charge_point_id=charge_point_id).values_list(
        "security_profile", flat=True
    )
    if not row:
        raise commands.UnknownChargePoint(charge_point_id)
    return security.effective_profile(row[0])
