"""ID tags, charging transactions and the meter values sampled during them."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuthorizationStatus(models.TextChoices):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class IdTag(models.Model):
    """An RFID card or other identifier a driver authorizes with (CiString20)."""

    id_tag = models.CharField("ID tag", max_length=20, unique=True)
    status = models.CharField(
        max_length=16,
        choices=[c for c in AuthorizationStatus.choices if c[0] != "ConcurrentTx"],
        default=AuthorizationStatus.ACCEPTED,
    )
    expiry_date = models.DateTimeField(null=True, blank=True)
    parent_id_tag = models.CharField("parent ID tag", max_length=20, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id_tag"]
        verbose_name = "ID tag"

    def __str__(self) -> str:
        return self.id_tag

    def is_expired(self, now=None) -> bool:
        return self.expiry_date is not None and self.expiry_date <= (now or timezone.now())


class TransactionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(stop_timestamp__isnull=True)


class Transaction(models.Model):
    """A charging session; its primary key is the OCPP transactionId."""

    charge_point = models.ForeignKey(
        "chargepoints.ChargePoint",
        on_delete=models.PROTECT,
        related_name="transactions",
        # The unique constraint and the first index below lead with it.
        db_index=False,
    )
    connector_id = models.PositiveIntegerField()
    id_tag = models.CharField("ID tag", max_length=20)
    id_tag_status = models.CharField(
        "ID tag status at start", max_length=16, choices=AuthorizationStatus.choices
    )
    reservation_id = models.IntegerField(null=True, blank=True)
    meter_start = models.IntegerField(help_text="Wh")
    start_timestamp = models.DateTimeField(help_text="As the charge point reported it.")
    meter_stop = models.IntegerField(null=True, blank=True, help_text="Wh")
    stop_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="As the charge point reported it."
    )
    stop_reason = models.CharField(max_length=20, blank=True)
    stop_id_tag = models.CharField("stop ID tag", max_length=20, blank=True)
    energy_wh = models.IntegerField(
        "energy (Wh)", null=True, blank=True, help_text="meter_stop - meter_start"
    )
    meter_stop_below_start = models.BooleanField(
        default=False, help_text="The charge point reported meterStop below meterStart."
    )
    received_at = models.DateTimeField(default=timezone.now)
    stop_received_at = models.DateTimeField(null=True, blank=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-start_timestamp", "-id"]
        constraints = [
            # A retried StartTransaction (its answer was lost) must find its first row.
            models.UniqueConstraint(
                fields=["charge_point", "connector_id", "id_tag", "start_timestamp", "meter_start"],
                name="unique_start_transaction",
            )
        ]
        indexes = [
            models.Index(fields=["charge_point", "connector_id", "stop_timestamp"]),
            models.Index(fields=["id_tag", "stop_timestamp"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.charge_point}/{self.connector_id}"

    @property
    def transaction_id(self) -> int:
        return self.pk

    @property
    def is_active(self) -> bool:
        return self.stop_timestamp is None

    @property
    def duration(self):
        if self.stop_timestamp is None:
            return None
        return self.stop_timestamp - self.start_timestamp


class MeterValue(models.Model):
    """One sampledValue of a MeterValues (or StopTransaction transactionData)."""

    charge_point = models.ForeignKey(
        "chargepoints.ChargePoint",
        on_delete=models.CASCADE,
        related_name="meter_values",
        # Both foreign keys lead a composite index (Meta.indexes); their own indexes
        # would only slow down the hottest insert of all.
        db_index=False,
    )
    connector_id = models.PositiveIntegerField()
    transaction = models.ForeignKey(
        Transaction,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="meter_values",
        db_index=False,
    )
    timestamp = models.DateTimeField(help_text="As the charge point reported it.")
    received_at = models.DateTimeField()
    value = models.CharField(max_length=64, help_text="As sent.")
    measurand = models.CharField(max_length=48, default="Energy.Active.Import.Register")
    phase = models.CharField(max_length=8, blank=True)
    unit = models.CharField(max_length=16, default="Wh")
    context = models.CharField(max_length=24, default="Sample.Periodic")
    location = models.CharField(max_length=8, default="Outlet")
    format = models.CharField(max_length=12, default="Raw")
    normalized_value = models.FloatField(
        null=True, blank=True, help_text="In normalized_unit (Wh for energy, W for power)."
    )
    normalized_unit = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            # Time first, measurand last: a MeterValues message adds its sampled values
            # at one place in the index (the end of its transaction), not at one
            # place per measurand, so each commit writes far fewer index pages.
            # "The latest sample of a measurand" reads back from the end and checks
            # the measurand in the index.
            models.Index(fields=["transaction", "timestamp", "measurand"]),
            models.Index(fields=["charge_point", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.measurand} {self.value} {self.unit}"
