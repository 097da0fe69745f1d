"""Database work of the OCPP session for charge points and connectors.

Each function is synchronous. The messages that every charge point sends at once
after a restart -- connect, BootNotification, StatusNotification -- and its
disconnect are written in bulk: the work of many sessions in a few queries, with a
result (or an exception) per message, which the session layer's group commit runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from . import security
from .db import insert_rows, update_rows
from .models import (
    CertificateRequestOutcome,
    CertificateSigningRequest,
    ChargePoint,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    LogStatusNotification,
    SecurityEvent,
    SecurityProfile,
    SignedFirmwareStatusNotification,
    StatusNotification,
)

logger = logging.getLogger(__name__)

#: What a StatusNotification reports about a connector (its history row and its Connector).
STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code")
#: What a StatusNotification updates on a known connector.
CONNECTOR_STATE_FIELDS = (*STATUS_FIELDS, "status_timestamp", "updated_at")

BOOT_IDENTITY_FIELDS = (
    "charge_point_vendor",
    "charge_point_model",
    "charge_point_serial_number",
    "charge_box_serial_number",
    "firmware_version",
    "iccid",
    "imsi",
    "meter_type",
    "meter_serial_number",
)


@dataclass(frozen=True)
class Connection:
    """A charge point that opened its WebSocket."""

    charge_point_id: str
    remote_address: str
    now: datetime
    #: The ServerProcess holding the socket (None outside a server process).
    server_process: uuid.UUID | None = None
    #: The registration status an unknown charge point is registered with (Accepted
    #: or Pending); "" leaves an unknown id unregistered (LEVITY_UNKNOWN_CHARGE_POINTS).
    registers_unknown_as: str = ""
    #: The session layer checked the upgrade against the charge point's credentials:
    #: written whatever its security profile. Else only under profile 0.
    proven: bool = False


@dataclass(frozen=True)
class Connected:
    """A connect written: the charge point's row is online."""

    pk: int
    registration_status: str
    #: The connect registered the charge point.
    registered: bool = False


#: What a connect writes on the charge point's row.
CONNECT_FIELDS = ("is_connected", "connected_at", "last_seen_at", "remote_address", "server_process")


def register_connections(connections: list[Connection]) -> list[Connected | security.Credentials | None]:
    """Mark charge points online, with one query to find them all and one to mark them
    (a reconnect storm).

    A charge point under security profile 0 is admitted on its id alone, so its
    connect is written at once. One under profiles 1-3 is written only once the
    session layer has checked its upgrade (``proven``); until then nothing is written
    and its credentials come back for that check. An unknown id is registered as
    ``registers_unknown_as`` (if the default profile needs no proof, or it is
    proven); else it comes back as None.
    """
    known = security.credentials_of(c.charge_point_id for c in connections)
    results: list[Connected | security.Credentials | None] = []
    updates: dict[int, tuple] = {}
    created: dict[str, ChargePoint] = {}
    registering: list[int] = []  # the indexes of the connects that register their charge point
    for index, connection in enumerate(connections):
        remote_address = connection.remote_address[:64]
        credentials = known.get(connection.charge_point_id)
        if credentials is not None:
            if not connection.proven and credentials.effective_profile != SecurityProfile.UNSECURED:
                results.append(credentials)
                continue
            updates[credentials.pk] = (
                credentials.pk,
                True,
                connection.now,
                connection.now,
                remote_address,
                connection.server_process,
            )
            results.append(Connected(credentials.pk, credentials.registration_status))
        elif connection.registers_unknown_as and (
            connection.proven or security.effective_profile(None) == SecurityProfile.UNSECURED
        ):
            created[connection.charge_point_id] = ChargePoint(
                charge_point_id=connection.charge_point_id,
                is_connected=True,
                connected_at=connection.now,
                last_seen_at=connection.now,
                remote_address=remote_address,
                server_process=connection.server_process,
                registration_status=connection.registers_unknown_as,
            )
            registering.append(index)
            results.append(None)  # its pk once created
        else:
            results.append(None)
    update_rows(ChargePoint, CONNECT_FIELDS, updates.values())
    if created:
        ChargePoint.objects.bulk_create(created.values())
        for index in registering:
            row = created[connections[index].charge_point_id]
            results[index] = Connected(row.pk, row.registration_status, registered=True)
    return results


@dataclass(frozen=True)
class Disconnection:
    """A session that ended: its charge point goes offline, with its last-seen times."""

    charge_point_pk: int
    now: datetime
    last_seen_at: datetime
    last_heartbeat_at: datetime | None
    #: The ``connected_at`` the session's connect wrote: a newer connect of the same
    #: charge point (another session) wrote another, and then its row is left alone.
    connected_at: datetime | None = None


def record_disconnections(disconnections: list[Disconnection]) -> list[None]:
    """Mark many charge points offline at once (a fleet that lost its network drops together).

    A disconnect never overwrites a newer connect: with ``connected_at``, a row whose
    connect time is another session's is not touched.
    """
    matched = [d for d in disconnections if d.connected_at is not None]
    _update_seen(
        {
            d.charge_point_pk: (d.last_seen_at, d.last_heartbeat_at, False, d.now, None)
            for d in disconnections
            if d.connected_at is None
        },
        ["is_connected", "disconnected_at", "server_process"],
    )
    _update_seen(
        {
            d.charge_point_pk: (d.last_seen_at, d.last_heartbeat_at, False, d.now, None, d.connected_at)
            for d in matched
        },
        ["is_connected", "disconnected_at", "server_process"],
        match=("connected_at",),
    )
    return [None] * len(disconnections)


def record_last_seen(rows: dict[int, tuple[datetime, datetime | None]]) -> None:
    """Write many charge points' last-seen and last-heartbeat times at once."""
    _update_seen(rows, [])


def _update_seen(rows: dict[int, tuple], field_names: list[str], match: tuple[str, ...] = ()) -> None:
    """UPDATE the last-seen times and ``field_names``; a last heartbeat only where there is one.

    ``rows``: by charge point pk, ``(last_seen_at, last_heartbeat_at, *values of field_names,
    *values of match)`` (see ``update_rows``).
    """
    if not rows:
        return
    with_heartbeat = [
        (pk, seen, beat, *values) for pk, (seen, beat, *values) in rows.items() if beat is not None
    ]
    without = [(pk, seen, *values) for pk, (seen, beat, *values) in rows.items() if beat is None]
    update_rows(ChargePoint, ["last_seen_at", "last_heartbeat_at", *field_names], with_heartbeat, match=match)
    update_rows(ChargePoint, ["last_seen_at", *field_names], without, match=match)


@dataclass(frozen=True)
class Boot:
    """A BootNotification: the identity the charge point reports."""

    charge_point_pk: int
    identity: dict
    now: datetime


def record_boots(boots: list[Boot]) -> list[str | Exception]:
    """Store what BootNotifications say; return the registration status to answer each.

    One UPDATE for all identities, one query for the answers.
    """
    rows = {
        boot.charge_point_pk: (
            boot.charge_point_pk,
            boot.now,
            boot.now,
            *((boot.identity.get(name) or "") for name in BOOT_IDENTITY_FIELDS),
        )
        for boot in boots
    }
    update_rows(ChargePoint, ["last_boot_at", "last_seen_at", *BOOT_IDENTITY_FIELDS], rows.values())
    statuses = dict(ChargePoint.objects.filter(pk__in=rows).values_list("pk", "registration_status"))
    # A charge point deleted meanwhile has no status: that boot alone fails.
    return [statuses.get(boot.charge_point_pk) or _deleted(boot.charge_point_pk) for boot in boots]


def _deleted(charge_point_pk: int) -> Exception:
    return ChargePoint.DoesNotExist(f"Charge point {charge_point_pk} no longer exists")


@dataclass(frozen=True)
class StatusReport:
    """A StatusNotification, as stored."""

    charge_point_pk: int
    connector_id: int
    status: str
    error_code: str
    info: str
    vendor_id: str
    vendor_error_code: str
    timestamp: datetime | None
    received_at: datetime

    @property
    def values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in STATUS_FIELDS}

    @property
    def effective_at(self) -> datetime:
        """When the status began, for ordering: the charge point's timestamp, unless it
        is missing or further in the future than LEVITY_CLOCK_SKEW_TOLERANCE (then
        the receive time: a clock far ahead must not pin the state for ever)."""
        if self.timestamp is None or self.is_future:
            return self.received_at
        return self.timestamp

    @property
    def is_future(self) -> bool:
        return self.timestamp is not None and self.timestamp > self.received_at + clock_skew_tolerance()


def clock_skew_tolerance() -> timedelta:
    """How far ahead of the server's clock a charge point's timestamp may be and still order."""
    return timedelta(seconds=settings.LEVITY_CLOCK_SKEW_TOLERANCE)


def record_status_notifications(reports: list[StatusReport]) -> list[None]:
    """Keep each history row, and each connector's current state unless a report is older.

    One INSERT for the history, one query for the connectors, then one INSERT for
    new connectors and one UPDATE for changed ones.
    """
    # A dated notification delivered twice is stored once (its idempotency key).
    insert_rows(
        StatusNotification,
        (
            {
                "charge_point_id": r.charge_point_pk,
                "connector_id": r.connector_id,
                "timestamp": r.timestamp,
                "received_at": r.received_at,
                **r.values,
            }
            for r in reports
        ),
        ignore_conflicts=True,
    )
    # Each connector's stored state, by (charge point pk, connector id).
    connectors: dict[tuple[int, int], dict[str, Any]] = {
        (charge_point_pk, connector_id): {"pk": pk, "status_timestamp": status_timestamp}
        for pk, charge_point_pk, connector_id, status_timestamp in Connector.objects.filter(
            charge_point_id__in={r.charge_point_pk for r in reports},
            connector_id__in={r.connector_id for r in reports},
        ).values_list("pk", "charge_point_id", "connector_id", "status_timestamp")
    }
    created: dict[tuple[int, int], dict] = {}
    changed: dict[tuple[int, int], dict] = {}
    tolerance = clock_skew_tolerance()
    for report in reports:
        key = (report.charge_point_pk, report.connector_id)
        connector = connectors.get(key)
        if report.is_future:
            logger.warning(
                "StatusNotification for connector %s is dated %s, more than %s ahead of the "
                "server's clock; stored as reported, ordered by its receive time",
                report.connector_id,
                report.timestamp,
                tolerance,
            )
        if connector is None:
            connectors[key] = created[key] = {
                "charge_point_id": report.charge_point_pk,
                "connector_id": report.connector_id,
                "status_timestamp": report.effective_at,
                **report.values,
            }
            continue
        # Queued notifications arrive late: order by the charge point's clock.
        stored_at = connector["status_timestamp"]
        # A stored time far in the future (stored before this rule) orders nothing.
        if stored_at and stored_at <= report.received_at + tolerance and report.effective_at < stored_at:
            logger.info(
                "StatusNotification for connector %s dated %s is older than the stored "
                "state (%s); kept in history only",
                report.connector_id,
                report.effective_at,
                stored_at,
            )
            continue
        connector.update(report.values, status_timestamp=report.effective_at, updated_at=report.received_at)
        if key not in created:
            changed[key] = connector
    if created:
        insert_rows(Connector, created.values())
    update_rows(
        Connector,
        CONNECTOR_STATE_FIELDS,
        [(c["pk"], *(c[name] for name in CONNECTOR_STATE_FIELDS)) for c in changed.values()],
    )
    return [None] * len(reports)


def record_data_transfer(
    charge_point_pk: int,
    *,
    vendor_id: str,
    message_id: str,
    data: str,
    status: str,
    response_data: str,
    received_at: datetime,
) -> None:
    DataTransfer.objects.create(
        charge_point_id=charge_point_pk,
        vendor_id=vendor_id,
        message_id=message_id,
        data=data,
        status=status,
        response_data=response_data,
        received_at=received_at,
    )


def record_diagnostics_status(charge_point_pk: int, status: str, received_at: datetime) -> None:
    DiagnosticsStatusNotification.objects.create(
        charge_point_id=charge_point_pk, status=status, received_at=received_at
    )


def record_firmware_status(charge_point_pk: int, status: str, received_at: datetime) -> None:
    FirmwareStatusNotification.objects.create(
        charge_point_id=charge_point_pk, status=status, received_at=received_at
    )


# --- the security extension ----------------------------------------------------------


def record_security_event(
    charge_point_pk: int, *, type: str, timestamp: datetime, tech_info: str, received_at: datetime
) -> bool:
    """Store a security event; False if it is already stored (a retry after a lost answer).

    Charge points queue security events while offline and resend one whose answer
    they missed: the same type, timestamp and techInfo is the same event.
    """
    event = {"type": type, "timestamp": timestamp, "tech_info": tech_info}
    if SecurityEvent.objects.filter(charge_point_id=charge_point_pk, **event).exists():
        return False
    SecurityEvent.objects.create(charge_point_id=charge_point_pk, received_at=received_at, **event)
    return True


def record_signed_firmware_status(
    charge_point_pk: int, status: str, request_id: int | None, received_at: datetime
) -> None:
    SignedFirmwareStatusNotification.objects.create(
        charge_point_id=charge_point_pk, status=status, request_id=request_id, received_at=received_at
    )


def record_log_status(
    charge_point_pk: int, status: str, request_id: int | None, received_at: datetime
) -> None:
    LogStatusNotification.objects.create(
        charge_point_id=charge_point_pk, status=status, request_id=request_id, received_at=received_at
    )


def record_certificate_request(
    charge_point_pk: int, *, csr: str, accepted: bool, reason: str, received_at: datetime
) -> int:
    """Store a SignCertificate and what it is answered; return the row's pk."""
    return CertificateSigningRequest.objects.create(
        charge_point_id=charge_point_pk,
        csr=csr,
        status="Accepted" if accepted else "Rejected",
        outcome=CertificateRequestOutcome.SIGNING if accepted else CertificateRequestOutcome.REJECTED,
        reason=reason,
        received_at=received_at,
        completed_at=None if accepted else received_at,
    ).pk


def record_certificate_issued(
    charge_point_pk: int, request_pk: int, *, certificate: str, serial_number: str, not_after: datetime
) -> None:
    CertificateSigningRequest.objects.filter(pk=request_pk, charge_point_id=charge_point_pk).update(
        certificate=certificate, serial_number=serial_number, not_after=not_after
    )


def record_certificate_outcome(
    charge_point_pk: int,
    request_pk: int,
    *,
    outcome: str,
    reason: str = "",
    command_pk: int | None = None,
    completed_at: datetime,
) -> None:
    """What became of an accepted request: installed, refused by the charge point, or failed."""
    CertificateSigningRequest.objects.filter(pk=request_pk, charge_point_id=charge_point_pk).update(
        outcome=outcome, reason=reason, command_id=command_pk, completed_at=completed_at
    )
