"""Charge points, their connectors, and what they report about themselves."""

from __future__ import annotations

from django.db import models


class RegistrationStatus(models.TextChoices):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ChargePointStatus(models.TextChoices):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargePoint(models.Model):
    """A charge point, known by the id in its WebSocket URL."""

    charge_point_id = models.CharField("charge point id", max_length=48, unique=True)
    registration_status = models.CharField(
        max_length=16, choices=RegistrationStatus.choices, default=RegistrationStatus.ACCEPTED
    )
    # Identity, as reported in BootNotification.
    charge_point_vendor = models.CharField(max_length=20, blank=True)
    charge_point_model = models.CharField(max_length=20, blank=True)
    charge_point_serial_number = models.CharField(max_length=25, blank=True)
    charge_box_serial_number = models.CharField(max_length=25, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    iccid = models.CharField("ICCID", max_length=20, blank=True)
    imsi = models.CharField("IMSI", max_length=20, blank=True)
    meter_type = models.CharField(max_length=25, blank=True)
    meter_serial_number = models.CharField(max_length=25, blank=True)
    # Connection state.
    is_connected = models.BooleanField("online", default=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_boot_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    remote_address = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["charge_point_id"]

    def __str__(self) -> str:
        return self.charge_point_id


class Connector(models.Model):
    """A connector's current state; connector 0 is the charge point as a whole."""

    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="connectors"
    )
    connector_id = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChargePointStatus.choices, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    info = models.CharField(max_length=50, blank=True)
    vendor_id = models.CharField(max_length=255, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    status_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="When the charge point says the status began."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["charge_point", "connector_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "connector_id"], name="unique_connector_per_charge_point"
            )
        ]

    def __str__(self) -> str:
        return f"{self.charge_point}/{self.connector_id}"


class StatusNotification(models.Model):
    """One row per StatusNotification received: the connector status history."""

    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="status_notifications"
    )
    connector_id = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChargePointStatus.choices)
    error_code = models.CharField(max_length=32)
    info = models.CharField(max_length=50, blank=True)
    vendor_id = models.CharField(max_length=255, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    timestamp = models.DateTimeField(
        null=True, blank=True, help_text="As the charge point reported it."
    )
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["charge_point", "connector_id", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.charge_point}/{self.connector_id} {self.status}"


class DataTransfer(models.Model):
    """A DataTransfer the charge point sent, and what it was answered."""

    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="data_transfers"
    )
    vendor_id = models.CharField(max_length=255)
    message_id = models.CharField(max_length=50, blank=True)
    data = models.TextField(blank=True)
    status = models.CharField(max_length=20)
    response_data = models.TextField(blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]


class DiagnosticsStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="diagnostics_status_notifications"
    )
    status = models.CharField(max_length=20)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]


class FirmwareStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="firmware_status_notifications"
    )
    status = models.CharField(max_length=30)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
