"""Charge points, their connectors, and what they report about themselves."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class RegistrationStatus(models.TextChoices):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class SecurityProfile(models.IntegerChoices):
    """OCPP 1.6 security profiles (the 1.6 security whitepaper)."""

    UNSECURED = 0, "0: no authentication"
    BASIC = 1, "1: HTTP Basic"
    TLS_BASIC = 2, "2: TLS and HTTP Basic"
    MUTUAL_TLS = 3, "3: TLS with a client certificate"


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
    # Security (docs/security.md): only salted hashes of passwords are stored.
    security_profile = models.PositiveSmallIntegerField(
        choices=SecurityProfile.choices,
        null=True,
        blank=True,
        help_text="Empty: the default profile (LEVITY_DEFAULT_SECURITY_PROFILE).",
    )
    password_hash = models.CharField(max_length=256, blank=True, editable=False)
    #: A rotated password sent in ChangeConfiguration AuthorizationKey, valid beside
    #: the old one until the charge point connects with it.
    new_password_hash = models.CharField(max_length=256, blank=True, editable=False)
    password_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The ServerProcess holding its WebSocket, while it is connected (not a foreign
    #: key: a dead process's row is deleted while its charge points still name it).
    server_process = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["charge_point_id"]

    def __str__(self) -> str:
        return self.charge_point_id


class ServerProcess(models.Model):
    """A running server process, alive while it refreshes ``alive_at`` (chargepoints.session.processes)."""

    id = models.UUIDField(primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField("PID")
    started_at = models.DateTimeField()
    alive_at = models.DateTimeField()

    class Meta:
        ordering = ["started_at"]
        verbose_name_plural = "server processes"

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"


class Connector(models.Model):
    """A connector's current state; connector 0 is the charge point as a whole."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="connectors")
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
        ChargePoint,
        on_delete=models.CASCADE,
        related_name="status_notifications",
        # The composite index below leads with it; its own index would only slow inserts.
        db_index=False,
    )
    connector_id = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChargePointStatus.choices)
    error_code = models.CharField(max_length=32)
    info = models.CharField(max_length=50, blank=True)
    vendor_id = models.CharField(max_length=255, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True, help_text="As the charge point reported it.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["charge_point", "connector_id", "-received_at"])]
        constraints = [
            # The idempotency key of a dated StatusNotification: delivered twice, one row.
            models.UniqueConstraint(
                fields=["charge_point", "connector_id", "timestamp", "status", "error_code"],
                condition=models.Q(timestamp__isnull=False),
                name="unique_status_notification",
            )
        ]

    def __str__(self) -> str:
        return f"{self.charge_point}/{self.connector_id} {self.status}"


class DataTransfer(models.Model):
    """A DataTransfer the charge point sent, and what it was answered."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="data_transfers")
    vendor_id = models.CharField(max_length=255)
    message_id = models.CharField(max_length=50, blank=True)
    data = models.TextField(blank=True)
    status = models.CharField(max_length=20)
    response_data = models.TextField(blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.charge_point} DataTransfer {self.vendor_id} {self.status}"


class DiagnosticsStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="diagnostics_status_notifications"
    )
    status = models.CharField(max_length=20)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.charge_point} DiagnosticsStatus {self.status}"


class FirmwareStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="firmware_status_notifications"
    )
    status = models.CharField(max_length=30)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.charge_point} FirmwareStatus {self.status}"


# --- remote operations (CS->CP commands) ---------------------------------------


class CommandStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted", "accepted (the charge point said yes)"
    REJECTED = "rejected", "rejected (the charge point said no)"
    CALLERROR = "callerror", "CALLERROR"
    TIMEOUT = "timeout"
    OFFLINE = "offline", "offline (not connected)"
    FAILED = "failed"


class PasswordRotation(models.TextChoices):
    """Where a password rotation (ChangeConfiguration AuthorizationKey) stands."""

    PENDING = "pending", "pending (old and new password valid)"
    COMPLETED = "completed", "completed (connected with the new password; the old one is refused)"
    ABANDONED = "abandoned", "abandoned (not taken; only the old password is valid)"
    SUPERSEDED = "superseded", "superseded (a newer password replaced it)"


class ChargePointCommand(models.Model):
    """One CS->CP request sent (or attempted) through the command service, and its answer."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="commands")
    action = models.CharField(max_length=40)
    message_id = models.CharField("OCPP message id", max_length=36, blank=True)
    request = models.JSONField(default=dict, help_text="The OCPP 1.6 payload sent.")
    response = models.JSONField(null=True, blank=True, help_text="The charge point's CALLRESULT payload.")
    response_status = models.CharField(
        max_length=32, blank=True, help_text="The `status` of the charge point's answer, if any."
    )
    status = models.CharField(max_length=16, choices=CommandStatus.choices, default=CommandStatus.PENDING)
    error_code = models.CharField(max_length=40, blank=True)
    error_description = models.TextField(blank=True)
    error_details = models.JSONField(null=True, blank=True)
    timeout = models.FloatField(help_text="Seconds the sender was prepared to wait.")
    requested_by = models.CharField(
        max_length=150, blank=True, help_text="user:<name>, token:<name>, cli:<name> or plugin:<name>"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    api_token = models.ForeignKey(
        "ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="commands"
    )
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the CALL went out.")
    answered_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From sending the CALL to the answer."
    )
    #: Set on the ChangeConfiguration AuthorizationKey of a password rotation only.
    password_rotation = models.CharField(
        max_length=16,
        choices=PasswordRotation.choices,
        blank=True,
        help_text="For a password rotation: what became of the new password.",
    )
    password_rotation_at = models.DateTimeField(
        null=True, blank=True, help_text="When the password rotation reached that state."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["charge_point", "-created_at"]),
            models.Index(fields=["status", "-created_at"]),
        ]
        verbose_name = "charge point command"

    def __str__(self) -> str:
        return f"{self.action} to {self.charge_point_id}: {self.status}"


class ConfigurationKey(models.Model):
    """A configuration key as the charge point last reported it (GetConfiguration)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="configuration_keys")
    key = models.CharField(max_length=50)
    value = models.TextField(blank=True, help_text="Empty when the charge point sent none.")
    readonly = models.BooleanField(default=False)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["charge_point", "key"]
        constraints = [
            models.UniqueConstraint(fields=["charge_point", "key"], name="unique_configuration_key")
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ApiTokenKind(models.TextChoices):
    API = "api", "API client"
    CLI = "cli", "manage.py command"


class ApiTokenScope(models.TextChoices):
    READ = "read", "Read only"
    COMMANDS = "commands", "Read and send commands"


class ApiToken(models.Model):
    """A bearer token for the HTTP API. Only the SHA-256 of the token is stored."""

    name = models.CharField(max_length=100, help_text="Who or what uses this token.")
    kind = models.CharField(max_length=8, choices=ApiTokenKind.choices, default=ApiTokenKind.API)
    scope = models.CharField(
        max_length=8,
        choices=ApiTokenScope.choices,
        default=ApiTokenScope.READ,
        help_text="What the token may do: read, or read and send commands to charge points.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The token's first characters, to recognise it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    #: Tokens look like ``lvt_<43 url-safe characters>``; the prefix makes them greppable.
    TOKEN_PREFIX = "lvt_"

    @staticmethod
    def hash(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return cls.TOKEN_PREFIX + secrets.token_urlsafe(32)

    def set_token(self, plaintext: str) -> None:
        self.token_hash = self.hash(plaintext)
        self.prefix = plaintext[:12]

    @classmethod
    def issue(cls, name: str, **fields) -> tuple[ApiToken, str]:
        """Create a token; return the row and the plaintext, which is not kept anywhere."""
        plaintext = cls.generate()
        token = cls(name=name, **fields)
        token.set_token(plaintext)
        token.save()
        return token, plaintext

    @classmethod
    def find_active(cls, plaintext: str) -> ApiToken | None:
        """The unrevoked, unexpired token with this plaintext, or None."""
        token = cls.objects.filter(token_hash=cls.hash(plaintext)).first()
        if token is None or not token.is_active:
            return None
        return token

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def requested_by(self) -> str:
        return f"{self.kind if self.kind == ApiTokenKind.CLI else 'token'}:{self.name}"


# --- the security extension (OCPP 1.6 security whitepaper) ------------------------------


class SecurityEvent(models.Model):
    """A SecurityEventNotification: a security-related event the charge point reported."""

    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="security_events", db_index=False
    )
    type = models.CharField(max_length=50, help_text="The whitepaper's event type, e.g. FirmwareUpdated.")
    timestamp = models.DateTimeField(help_text="As the charge point reported it.")
    tech_info = models.CharField("technical information", max_length=255, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["charge_point", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.charge_point_id}: {self.type}"


class SignedFirmwareStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="signed_firmware_status_notifications"
    )
    status = models.CharField(max_length=30)
    request_id = models.IntegerField(null=True, blank=True, help_text="Of the SignedUpdateFirmware.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.charge_point_id}: {self.status}"


class LogStatusNotification(models.Model):
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="log_status_notifications"
    )
    status = models.CharField(max_length=30)
    request_id = models.IntegerField(null=True, blank=True, help_text="Of the GetLog.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.charge_point_id}: {self.status}"


class CertificateRequestOutcome(models.TextChoices):
    REJECTED = "rejected", "rejected (SignCertificate answered Rejected)"
    SIGNING = "signing", "accepted, being signed and sent"
    INSTALLED = "installed", "installed (the charge point accepted CertificateSigned)"
    REFUSED = "refused", "refused (the charge point rejected CertificateSigned)"
    FAILED = "failed", "failed (not signed, or CertificateSigned not delivered)"


class CertificateSigningRequest(models.Model):
    """A SignCertificate from a charge point, the certificate issued for it, and the outcome."""

    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="certificate_requests"
    )
    csr = models.TextField("CSR", help_text="The PEM certificate signing request, as sent.")
    status = models.CharField(max_length=10, help_text="What SignCertificate was answered.")
    outcome = models.CharField(max_length=10, choices=CertificateRequestOutcome.choices)
    reason = models.TextField(blank=True, help_text="Why it was rejected or failed.")
    received_at = models.DateTimeField()
    certificate = models.TextField(blank=True, help_text="The issued certificate (PEM).")
    serial_number = models.CharField(max_length=40, blank=True, help_text="Hexadecimal.")
    not_after = models.DateTimeField("valid until", null=True, blank=True)
    command = models.ForeignKey(
        ChargePointCommand,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The CertificateSigned sent with the certificate.",
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "certificate signing request"

    def __str__(self) -> str:
        return f"{self.charge_point_id}: {self.outcome}"
