"""Database work of the OCPP session for charge points and connectors.

Each function is synchronous and runs in the database thread. The messages that
every charge point sends at once after a restart -- connect, BootNotification,
StatusNotification -- and its disconnect are written in bulk: the work of many
sessions in a few queries, with a result (or an exception) per message
(chargepoints.batching.BulkWrite).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from . import processes
from .batching import insert_rows, update_rows
from .models import (
    ChargePoint,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    StatusNotification,
)

logger = logging.getLogger(__name__)

#: What a StatusNotification reports about a connector (its history row and its Connector).
STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code")

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
    auto_register: bool


def register_connections(connections: list[Connection]) -> list[ChargePoint | None]:
    """Mark charge points online; None for one that is unknown when auto-registration
    is off. One query to find them, one to mark them (a reconnect storm)."""
    ids = {c.charge_point_id for c in connections}
    known = {cp.charge_point_id: cp for cp in ChargePoint.objects.filter(charge_point_id__in=ids)}
    created: dict[str, ChargePoint] = {}
    results: list[ChargePoint | None] = []
    server_process = processes.current()
    for connection in connections:
        charge_point = known.get(connection.charge_point_id)
        if charge_point is None:
            if not connection.auto_register:
                results.append(None)
                continue
            charge_point = created.setdefault(
                connection.charge_point_id, ChargePoint(charge_point_id=connection.charge_point_id)
            )
        charge_point.is_connected = True
        charge_point.connected_at = connection.now
        charge_point.last_seen_at = connection.now
        charge_point.remote_address = connection.remote_address[:64]
        charge_point.server_process = server_process
        results.append(charge_point)
    update_rows(
        ChargePoint,
        ["is_connected", "connected_at", "last_seen_at", "remote_address", "server_process"],
        known.values(),
    )
    if created:
        ChargePoint.objects.bulk_create(created.values())
    return results


@dataclass(frozen=True)
class Disconnection:
    """A session that ended: its charge point goes offline, with its last-seen times."""

    charge_point_pk: int
    now: datetime
    last_seen_at: datetime
    last_heartbeat_at: datetime | None


def record_disconnections(disconnections: list[Disconnection]) -> list[None]:
    """Mark many charge points offline at once (a fleet that lost its network drops together)."""
    rows = {
        d.charge_point_pk: ChargePoint(
            pk=d.charge_point_pk,
            is_connected=False,
            disconnected_at=d.now,
            server_process=None,
            last_seen_at=d.last_seen_at,
            last_heartbeat_at=d.last_heartbeat_at,
        )
        for d in disconnections
    }
    _update_seen(rows.values(), ["is_connected", "disconnected_at", "server_process"])
    return [None] * len(disconnections)


def record_last_seen(rows: dict[int, tuple[datetime, datetime | None]]) -> None:
    """Write many charge points' last-seen and last-heartbeat times at once."""
    charge_points = [
        ChargePoint(pk=pk, last_seen_at=last_seen_at, last_heartbeat_at=last_heartbeat_at)
        for pk, (last_seen_at, last_heartbeat_at) in rows.items()
    ]
    with transaction.atomic():
        _update_seen(charge_points, [])


def _update_seen(charge_points: Collection[ChargePoint], field_names: list[str]) -> None:
    """UPDATE ``field_names`` and the last-seen times; a last heartbeat only where there is one."""
    with_heartbeat = [cp for cp in charge_points if cp.last_heartbeat_at is not None]
    without = [cp for cp in charge_points if cp.last_heartbeat_at is None]
    update_rows(ChargePoint, [*field_names, "last_seen_at", "last_heartbeat_at"], with_heartbeat)
    update_rows(ChargePoint, [*field_names, "last_seen_at"], without)


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
    rows = {}
    for boot in boots:
        fields = {name: (boot.identity.get(name) or "") for name in BOOT_IDENTITY_FIELDS}
        rows[boot.charge_point_pk] = ChargePoint(
            pk=boot.charge_point_pk, last_boot_at=boot.now, last_seen_at=boot.now, **fields
        )
    update_rows(ChargePoint, ["last_boot_at", "last_seen_at", *BOOT_IDENTITY_FIELDS], rows.values())
    statuses = dict(
        ChargePoint.objects.filter(pk__in=rows).values_list("pk", "registration_status")
    )
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
        return self.timestamp or self.received_at


def record_status_notifications(reports: list[StatusReport]) -> list[None]:
    """Keep each history row, and each connector's current state unless a report is older.

    One INSERT for the history, one query for the connectors, then one INSERT for
    new connectors and one UPDATE for changed ones.
    """
    insert_rows(
        StatusNotification,
        (
            StatusNotification(
                charge_point_id=r.charge_point_pk,
                connector_id=r.connector_id,
                timestamp=r.timestamp,
                received_at=r.received_at,
                **r.values,
            )
            for r in reports
        ),
    )
    connectors = {
        (c.charge_point_id, c.connector_id): c
        for c in Connector.objects.filter(
            charge_point_id__in={r.charge_point_pk for r in reports},
            connector_id__in={r.connector_id for r in reports},
        )
    }
    created: dict[tuple[int, int], Connector] = {}
    changed: dict[tuple[int, int], Connector] = {}
    for report in reports:
        key = (report.charge_point_pk, report.connector_id)
        connector = connectors.get(key)
        if connector is None:
            connectors[key] = created[key] = Connector(
                charge_point_id=report.charge_point_pk,
                connector_id=report.connector_id,
                status_timestamp=report.effective_at,
                **report.values,
            )
            continue
        # Queued notifications arrive late: order by the charge point's clock.
        if connector.status_timestamp and report.effective_at < connector.status_timestamp:
            logger.info(
                "StatusNotification for connector %s dated %s is older than the stored "
                "state (%s); kept in history only",
                report.connector_id,
                report.effective_at,
                connector.status_timestamp,
            )
            continue
        for name, value in report.values.items():
            setattr(connector, name, value)
        connector.status_timestamp = report.effective_at
        connector.updated_at = report.received_at
        if key not in created:
            changed[key] = connector
    if created:
        insert_rows(Connector, created.values())
    update_rows(Connector, [*STATUS_FIELDS, "status_timestamp", "updated_at"], changed.values())
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
