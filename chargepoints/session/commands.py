"""The CS->CP command service: send any OCPP 1.6 Central System request, store it, answer.

``send_command()`` is the one door that the admin, the HTTP API and the manage.py
commands use. It validates the request, stores a ChargePointCommand, finds the
charge point's session -- in this process, or, when a cross-process channel layer
(channels-redis) is configured, in whichever server process holds the socket,
through the group ``cp.<id>`` -- and stores the answer: the charge point's
CALLRESULT, its CALLERROR, a timeout, or "offline".

Only one CS->CP call is in flight per charge point (LevityChargePoint.call holds
a lock); a command that finds the line busy waits its turn within its timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from channels.layers import get_channel_layer
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.v16 import call

from levity_site.conf import settings

from ..models import ChargePoint, ChargePointCommand, CommandStatus, ConfigurationKey
from ..ocpp16 import protocol
from . import registry, writer
from .base import ChargePointDisconnected, Session

logger = logging.getLogger(__name__)

#: The OCPP 1.6 requests a Central System sends, by action name.
ACTIONS: dict[str, type] = {
    name: getattr(call, name)
    for name in (
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
        "ChangeAvailability",
        "ChangeConfiguration",
        "GetConfiguration",
        "ClearCache",
        "TriggerMessage",
        "DataTransfer",
        "GetDiagnostics",
        "UpdateFirmware",
        "ReserveNow",
        "CancelReservation",
        "SetChargingProfile",
        "ClearChargingProfile",
        "GetCompositeSchedule",
        "SendLocalList",
        "GetLocalListVersion",
        # The security extension (OCPP 1.6 security whitepaper).
        "CertificateSigned",
        "InstallCertificate",
        "GetInstalledCertificateIds",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetLog",
        "SignedUpdateFirmware",
    )
}

#: What a TriggerMessage may request (OCPP 1.6 MessageTrigger; the ocpp package's enum
#: also has the security extension's values).
TRIGGERABLE_MESSAGES = [
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
]

#: What an ExtendedTriggerMessage (security extension) may request.
EXTENDED_TRIGGERABLE_MESSAGES = [
    "BootNotification",
    "LogStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "SignChargePointCertificate",
    "StatusNotification",
]

#: Answers whose `status` means the charge point does (or will do) what was asked.
SUCCESS_STATUSES = frozenset({"Accepted", "Unlocked", "Scheduled", "RebootRequired", "AcceptedCanceled"})


#: Configuration keys whose values are secrets: the command log keeps them masked.
SECRET_CONFIGURATION_KEYS = frozenset({"AuthorizationKey"})
MASK = "********"


def stored_request(action: str, payload: dict) -> dict:
    """The payload as the command log keeps it: a secret configuration value masked."""
    if action == "ChangeConfiguration" and payload.get("key") in SECRET_CONFIGURATION_KEYS:
        return {**payload, "value": MASK}
    return payload


class CommandError(Exception):
    """A command that could not be sent at all (nothing is stored)."""


class UnknownChargePoint(CommandError):
    def __init__(self, charge_point_id: str):
        super().__init__(f"No charge point with id {charge_point_id!r}")
        self.charge_point_id = charge_point_id


class InvalidCommand(CommandError):
    """The action is not a CS->CP command, or the payload breaks its 1.6 schema."""

    def __init__(self, message: str, *, field: str | None = None, ocpp_error_code: str = ""):
        super().__init__(message)
        self.field = field
        self.ocpp_error_code = ocpp_error_code


@dataclass
class Outcome:
    """What became of one call; plain data so that it can cross the channel layer."""

    status: str
    response: dict | None = None
    response_status: str = ""
    error_code: str = ""
    error_description: str = ""
    error_details: dict | None = field(default=None)
    sent_at: float | None = None
    answered_at: float | None = None


# --- the service -------------------------------------------------------------------


def validate_command(action: str, payload: Any, timeout: float | None = None) -> float:
    """Check a command before anything is stored; return the timeout to use."""
    if action not in ACTIONS:
        raise InvalidCommand(
            f"{action!r} is not an OCPP 1.6 Central System command; use one of: {', '.join(sorted(ACTIONS))}",
            field="action",
        )
    if not isinstance(payload, dict):
        raise InvalidCommand("The payload must be a JSON object", field="payload")
    try:
        protocol.validate(action, payload)
    except OCPPError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        raise InvalidCommand(
            f"Invalid {action} payload: {exc.description}",
            field=details.get("field"),
            ocpp_error_code=exc.code,
        ) from None
    if timeout is None:
        return settings.LEVITY_CALL_TIMEOUT
    if not 0 < timeout <= settings.LEVITY_COMMAND_MAX_TIMEOUT:
        raise InvalidCommand(
            f"timeout must be more than 0 and at most {settings.LEVITY_COMMAND_MAX_TIMEOUT:g} seconds",
            field="timeout",
        )
    return float(timeout)


async def send_command(
    charge_point_id: str,
    action: str,
    payload: dict,
    *,
    timeout: float | None = None,
    requested_by: str = "",
    user_id: int | None = None,
    api_token_id: int | None = None,
    password_rotation: str = "",
) -> ChargePointCommand:
    """Send a CS->CP request and return the stored command with its outcome.

    Raises InvalidCommand (bad action, payload or timeout) and UnknownChargePoint;
    every other outcome -- accepted, rejected, CALLERROR, timeout, offline -- is a
    stored command whose ``status`` says which. ``password_rotation`` is stored on
    the command as it is created (chargepoints.session.onboarding.rotate_password).
    """
    if (
        not password_rotation
        and action == "ChangeConfiguration"
        and isinstance(payload, dict)
        and payload.get("key") in SECRET_CONFIGURATION_KEYS
    ):
        # A password Levity does not know would lock the charge point out at its next connect.
        raise InvalidCommand(
            f"{payload['key']} is the charge point's password: rotate it instead "
            "(POST /api/v1/charge-points/{id}/password-rotation, or the admin's action), "
            "so that Levity knows the new one and the old one stays valid until it is used",
            field="payload",
        )
    timeout = validate_command(action, payload, timeout)
    message_id = str(uuid.uuid4())
    command = await writer.run(
        _create,
        charge_point_id,
        action=action,
        message_id=message_id,
        request=stored_request(action, payload),
        timeout=timeout,
        password_rotation=password_rotation,
        password_rotation_at=datetime.now(timezone.utc) if password_rotation else None,
        requested_by=requested_by[:150],
        user_id=user_id,
        api_token_id=api_token_id,
    )
    # Shielded: a caller that goes away (an HTTP client disconnecting) does not
    # leave the command pending; it is still delivered and its outcome stored. In
    # a fresh context, so that its database hop does not depend on the request's
    # thread-sensitive context, which ends with the request.
    task = asyncio.get_running_loop().create_task(_deliver(command, payload), context=contextvars.Context())
    _delivering.add(task)
    task.add_done_callback(_delivering.discard)
    return await asyncio.shield(task)


_delivering: set[asyncio.Task] = set()


async def _deliver(command: ChargePointCommand, payload: dict) -> ChargePointCommand:
    charge_point_id = command.charge_point.charge_point_id
    action, timeout, message_id = command.action, command.timeout, command.message_id
    session = registry.get(charge_point_id)
    if session is not None:
        outcome = await call_session(session, action, payload, timeout, message_id)
    elif cross_process():
        from redis.exceptions import RedisError  # only a channels-redis layer joins processes

        try:
            outcome = await _call_through_channel_layer(charge_point_id, action, payload, timeout, message_id)
        except (OSError, RedisError) as exc:
            # Redis away: the command is stored as failed and the caller told why,
            # rather than a 500 and a command left pending.
            logger.warning("%s %s: the channel layer is unreachable: %s", charge_point_id, action, exc)
            outcome = Outcome(
                CommandStatus.FAILED,
                error_description=f"The channel layer (Redis) is unreachable: {exc}",
            )
    else:
        outcome = Outcome(CommandStatus.OFFLINE, error_description=f"{charge_point_id} is not connected")
    await writer.run(_finish, command, outcome)
    log = logger.info if command.status == CommandStatus.ACCEPTED else logger.warning
    log(
        "%s %s by %s: %s %s",
        charge_point_id,
        action,
        command.requested_by or "?",
        command.status,
        command.response_status or command.error_code or command.error_description,
    )
    return command


async def call_session(
    session: Session, action: str, payload: dict, timeout: float, message_id: str
) -> Outcome:
    """Run one validated command on a session of this process."""
    request = ACTIONS[action](**protocol.snake_case(payload))
    sent: list[float] = []
    try:
        result = await session.call(
            request,
            suppress=False,
            unique_id=message_id,
            skip_schema_validation=True,  # validated by send_command; the answer below
            timeout=timeout,
            on_sent=lambda: sent.append(time.time()),
        )
    except TimeoutError:
        waited = "" if sent else " (an earlier command to it was still in flight)"
        return Outcome(
            CommandStatus.TIMEOUT,
            error_description=f"No answer within {timeout:g} s{waited}",
            sent_at=sent[0] if sent else None,
        )
    except protocol.InvalidAnswer as exc:  # a CALLRESULT, but not one of the action's schema
        return Outcome(
            CommandStatus.FAILED,
            response=exc.payload,
            error_code=exc.code,
            error_description=exc.description,
            sent_at=sent[0] if sent else None,
            answered_at=time.time(),
        )
    except OCPPError as exc:
        return Outcome(
            CommandStatus.CALLERROR,
            error_code=exc.code,
            error_description=exc.description or "",
            error_details=exc.details if isinstance(exc.details, dict) else None,
            sent_at=sent[0] if sent else None,
            answered_at=time.time(),
        )
    except UnknownCallErrorCodeError as exc:
        return Outcome(
            CommandStatus.CALLERROR,
            error_code=_unknown_error_code(str(exc)),
            error_description=str(exc),
            sent_at=sent[0] if sent else None,
            answered_at=time.time(),
        )
    except Exception as exc:
        # ChargePointDisconnected, or the socket failed while sending.
        if isinstance(exc, ChargePointDisconnected) or not sent:
            return Outcome(
                CommandStatus.OFFLINE,
                error_description=f"{session.id} disconnected before answering",
                sent_at=sent[0] if sent else None,
            )
        logger.exception("%s: %s failed", session.id, action)
        return Outcome(CommandStatus.FAILED, error_description=f"{type(exc).__name__}: {exc}")
    answered_at = time.time()
    response = protocol.to_payload(result)
    try:
        protocol.validate(action, response, response=True, lenient=True)
    except OCPPError as exc:
        return Outcome(
            CommandStatus.FAILED,
            response=response,
            error_code=exc.code,
            error_description=f"The answer is not a valid {action}Response: {exc.description}",
            sent_at=sent[0],
            answered_at=answered_at,
        )
    response_status = str(response.get("status", ""))
    accepted = not response_status or response_status in SUCCESS_STATUSES
    return Outcome(
        CommandStatus.ACCEPTED if accepted else CommandStatus.REJECTED,
        response=response,
        response_status=response_status,
        sent_at=sent[0],
        answered_at=answered_at,
    )


def _unknown_error_code(message: str) -> str:
    match = re.search(r"Error code '([^']*)'", message)
    return match.group(1)[:40] if match else ""


# --- database ------------------------------------------------------------------------


def _create(charge_point_id: str, **fields: Any) -> ChargePointCommand:
    charge_point = (
        ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk", "charge_point_id").first()
    )
    if charge_point is None:
        raise UnknownChargePoint(charge_point_id)
    return ChargePointCommand.objects.create(
        charge_point=charge_point, created_at=datetime.now(timezone.utc), **fields
    )


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)


#: What _finish() writes on a ChargePointCommand.
OUTCOME_FIELDS = (
    "status",
    "response",
    "response_status",
    "error_code",
    "error_description",
    "error_details",
    "sent_at",
    "answered_at",
    "duration_ms",
)


def _finish(command: ChargePointCommand, outcome: Outcome) -> None:
    """Store the outcome, and what it tells about the charge point's configuration."""
    command.status = outcome.status
    command.response = outcome.response
    command.response_status = outcome.response_status[:32]
    command.error_code = outcome.error_code[:40]
    command.error_description = outcome.error_description
    command.error_details = outcome.error_details or None
    command.sent_at = _when(outcome.sent_at)
    command.answered_at = _when(outcome.answered_at)
    if outcome.sent_at is not None and outcome.answered_at is not None:
        command.duration_ms = max(0, round((outcome.answered_at - outcome.sent_at) * 1000))
    command.save(update_fields=OUTCOME_FIELDS)
    if command.status == CommandStatus.ACCEPTED:
        _record_configuration(command)


def _record_configuration(command: ChargePointCommand) -> None:
    now = datetime.now(timezone.utc)
    if command.action == "GetConfiguration":
        for item in (command.response or {}).get("configurationKey") or ():
            ConfigurationKey.objects.update_or_create(
                charge_point_id=command.charge_point_id,
                key=item["key"],
                defaults={
                    "value": item.get("value") or "",
                    "readonly": bool(item.get("readonly")),
                    "updated_at": now,
                },
            )
    elif command.action == "ChangeConfiguration":
        ConfigurationKey.objects.update_or_create(
            charge_point_id=command.charge_point_id,
            key=command.request["key"],
            defaults={"value": command.request["value"], "updated_at": now},
        )


# --- several server processes ----------------------------------------------------------


def cross_process() -> bool:
    """True when the channel layer joins several server processes (channels-redis)."""
    backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
    return bool(backend) and not backend.endswith(".InMemoryChannelLayer")


_SAFE_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,90}$")


def group_name(charge_point_id: str) -> str:
    """The channel layer group of a charge point's session (ids with other characters hashed)."""
    if _SAFE_GROUP.match(charge_point_id):
        return f"cp.{charge_point_id}"
    return "cp.h" + hashlib.sha256(charge_point_id.encode()).hexdigest()[:40]


async def _call_through_channel_layer(
    charge_point_id: str, action: str, payload: dict, timeout: float, message_id: str
) -> Outcome:
    """Ask whichever process holds the charge point to run the command; wait for its report."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    await layer.group_send(
        group_name(charge_point_id),
        {
            "type": "ocpp.command",
            "reply_channel": reply_channel,
            "action": action,
            "payload": payload,
            "timeout": timeout,
            "message_id": message_id,
        },
    )
    loop = asyncio.get_running_loop()
    route_timeout = settings.LEVITY_COMMAND_ROUTE_TIMEOUT
    deadline = loop.time() + route_timeout
    acknowledged = False
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(reply_channel), max(deadline - loop.time(), 0))
        except TimeoutError:
            if not acknowledged:
                return Outcome(
                    CommandStatus.OFFLINE,
                    error_description=f"{charge_point_id} is not connected to any server process",
                )
            return Outcome(
                CommandStatus.TIMEOUT,
                error_description=(
                    f"No answer within {timeout:g} s (the server process holding "
                    f"{charge_point_id} did not report back)"
                ),
            )
        if message.get("type") == "ocpp.command.ack" and not acknowledged:
            acknowledged = True
            deadline = loop.time() + timeout + route_timeout
        elif message.get("type") == "ocpp.command.result":
            return Outcome(**message["outcome"])


async def serve_routed_command(session: Session, layer, event: dict) -> None:
    """Run a command another process routed to this one's session, and report back."""
    reply_channel = event["reply_channel"]
    call = asyncio.ensure_future(
        call_session(session, event["action"], event["payload"], event["timeout"], event["message_id"])
    )
    # The acknowledgement only tells the sender to wait past its route timeout, so a
    # command answered well within that needs none (one Redis message fewer).
    done, _ = await asyncio.wait({call}, timeout=settings.LEVITY_COMMAND_ROUTE_TIMEOUT / 2)
    if not done:
        await layer.send(reply_channel, {"type": "ocpp.command.ack"})
    try:
        outcome = await call
    except Exception as exc:
        logger.exception("%s: routed %s failed", session.id, event.get("action"))
        outcome = Outcome(CommandStatus.FAILED, error_description=f"{type(exc).__name__}: {exc}")
    report = {**asdict(outcome), "status": str(outcome.status)}
    await layer.send(reply_channel, {"type": "ocpp.command.result", "outcome": report})
