"""Database work of the OCPP session for charge points and connectors.

Each function is synchronous and does one message's worth of work in one
transaction, so that the session makes a single hop to the database thread per
message (see chargepoints.handlers).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

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


def register_connection(
    charge_point_id: str, remote_address: str, now: datetime, *, auto_register: bool
) -> ChargePoint | None:
    """Mark a charge point online; None when it is unknown and auto-registration is off."""
    with transaction.atomic():
        charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
        if charge_point is None:
            if not auto_register:
                return None
            charge_point = ChargePoint(charge_point_id=charge_point_id)
        charge_point.is_connected = True
        charge_point.connected_at = now
        charge_point.last_seen_at = now
        charge_point.remote_address = remote_address[:64]
        charge_point.save()
    return charge_point


def record_disconnect(
    charge_point_pk: int, now: datetime, last_seen_at: datetime, last_heartbeat_at: datetime | None
) -> None:
    fields = {"is_connected": False, "disconnected_at": now, "last_seen_at": last_seen_at}
    if last_heartbeat_at is not None:
        fields["last_heartbeat_at"] = last_heartbeat_at
    ChargePoint.objects.filter(pk=charge_point_pk).update(**fields)


def record_last_seen(rows: dict[int, tuple[datetime, datetime | None]]) -> None:
    """Write many charge points' last-seen and last-heartbeat times at once."""
    charge_points = []
    for pk, (last_seen_at, last_heartbeat_at) in rows.items():
        cp = ChargePoint(pk=pk, last_seen_at=last_seen_at, last_heartbeat_at=last_heartbeat_at)
        charge_points.append(cp)
    with transaction.atomic():
        with_heartbeat = [cp for cp in charge_points if cp.last_heartbeat_at is not None]
        without = [cp for cp in charge_points if cp.last_heartbeat_at is None]
        if with_heartbeat:
            ChargePoint.objects.bulk_update(
                with_heartbeat, ["last_seen_at", "last_heartbeat_at"], batch_size=500
            )
        if without:
            ChargePoint.objects.bulk_update(without, ["last_seen_at"], batch_size=500)


def record_boot(charge_point_pk: int, identity: dict, now: datetime) -> str:
    """Store what BootNotification says; return the registration status to answer."""
    fields = {name: (identity.get(name) or "") for name in BOOT_IDENTITY_FIELDS}
    with transaction.atomic():
        ChargePoint.objects.filter(pk=charge_point_pk).update(
            last_boot_at=now, last_seen_at=now, **fields
        )
        return ChargePoint.objects.values_list("registration_status", flat=True).get(
            pk=charge_point_pk
        )


def record_status_notification(
    charge_point_pk: int,
    *,
    connector_id: int,
    status: str,
    error_code: str,
    info: str,
    vendor_id: str,
    vendor_error_code: str,
    timestamp: datetime | None,
    received_at: datetime,
) -> None:
    """Keep the history row, and the connector's current state unless this one is older."""
    values = {
        "status": status,
        "error_code": error_code,
        "info": info,
        "vendor_id": vendor_id,
        "vendor_error_code": vendor_error_code,
    }
    with transaction.atomic():
        StatusNotification.objects.create(
            charge_point_id=charge_point_pk,
            connector_id=connector_id,
            timestamp=timestamp,
            received_at=received_at,
            **values,
        )
        connector, created = Connector.objects.get_or_create(
            charge_point_id=charge_point_pk,
            connector_id=connector_id,
            defaults={**values, "status_timestamp": timestamp or received_at},
        )
        if created:
            return
        effective = timestamp or received_at
        # Queued notifications arrive late: order by the charge point's clock.
        if connector.status_timestamp and effective < connector.status_timestamp:
            logger.info(
                "StatusNotification for connector %s dated %s is older than the stored "
                "state (%s); kept in history only",
                connector_id,
                effective,
                connector.status_timestamp,
            )
            return
        for name, value in values.items():
            setattr(connector, name, value)
        connector.status_timestamp = effective
        connector.save()


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
