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


class StoppedBy(models.TextChoices):
    """Whose word a transaction's stop is: the charge point's own StopTransaction wins."""

    CHARGE_POINT = "charge_point", "charge point (StopTransaction)"
    SERVER = "server", "server (closed on its own authority)"


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
    # 64-bit: an energy register passes 2^31 Wh (2.1 GWh) in a DC charger's life, and
    # sampled values carry such readings; 1.6's meterStart/meterStop are still
    # validated as its 32-bit integers.
    meter_start = models.BigIntegerField(help_text="Wh")
    start_timestamp = models.DateTimeField(help_text="As the charge point reported it.")
    meter_stop = models.BigIntegerField(null=True, blank=True, help_text="Wh")
    stop_timestamp = models.DateTimeField(null=True, blank=True, help_text="As the charge point reported it.")
    stop_reason = models.CharField(max_length=20, blank=True)
    stop_id_tag = models.CharField("stop ID tag", max_length=20, blank=True)
    energy_wh = models.BigIntegerField(
        "energy (Wh)", null=True, blank=True, help_text="meter_stop - meter_start"
    )
    stopped_by = models.CharField(
        max_length=16,
        choices=StoppedBy.choices,
        blank=True,
        help_text="Whose stop this is; empty while active (and for stops stored before it was recorded).",
    )
    rebuilt = models.BooleanField(
        default=False,
        help_text=(
            "Rebuilt from a StopTransaction for a transaction Levity never saw start: "
            "start time and meter start are the earliest the stop carries."
        ),
    )
    reported_transaction_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="For a rebuilt transaction: the transactionId the charge point's stop named.",
    )
    meter_stop_below_start = models.BooleanField(
        default=False, help_text="The charge point reported meterStop below meterStart."
    )
    stop_before_start = models.BooleanField(
        default=False,
        help_text=(
            "The stop is timestamped before the start (the charge point's clock was wrong "
            "at one of them); both are kept as reported."
        ),
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
            ),
            # A retried StopTransaction for a transaction Levity never saw finds the
            # one its first attempt rebuilt.
            models.UniqueConstraint(
                fields=["charge_point", "reported_transaction_id"],
                condition=models.Q(reported_transaction_id__isnull=False),
                name="unique_rebuilt_transaction",
            ),
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


class SupersededStop(models.Model):
    """A stop that a later, more authoritative one replaced, kept as history.

    The server closes a transaction on its own authority (an orphan, say); when the
    charge point's own StopTransaction arrives later, its values replace the
    server's guess, which is kept here.
    """

    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="superseded_stops")
    stopped_by = models.CharField(max_length=16, choices=StoppedBy.choices, blank=True)
    meter_stop = models.BigIntegerField(null=True, blank=True, help_text="Wh")
    stop_timestamp = models.DateTimeField()
    stop_reason = models.CharField(max_length=20, blank=True)
    energy_wh = models.BigIntegerField("energy (Wh)", null=True, blank=True)
    stop_received_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(help_text="When the charge point's stop replaced it.")

    class Meta:
        ordering = ["transaction", "superseded_at", "id"]

    def __str__(self) -> str:
        return f"#{self.transaction_id} stop by {self.stopped_by or '?'} at {self.stop_timestamp}"


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
        indexes = [models.Index(fields=["charge_point", "timestamp"])]
        constraints = [
            # The idempotency key of a sampled value: a MeterValues (or a
            # StopTransaction's transactionData) delivered twice stores it once.
            # Its index is also the transaction's index by time. Time first,
            # measurand after: a MeterValues message adds its sampled values at one
            # place in the index (the end of its transaction), not at one place per
            # measurand, so each commit writes far fewer index pages. "The latest
            # sample of a measurand" reads back from the end and checks the
            # measurand in the index.
            models.UniqueConstraint(
                fields=["transaction", "timestamp", "measurand", "phase", "location", "context", "unit"],
                condition=models.Q(transaction__isnull=False),
                name="unique_transaction_meter_value",
            ),
            # Values outside a transaction (clock-aligned): the same, per connector.
            models.UniqueConstraint(
                fields=[
                    "charge_point",
                    "connector_id",
                    "timestamp",
                    "measurand",
                    "phase",
                    "location",
                    "context",
                    "unit",
                ],
                condition=models.Q(transaction__isnull=True),
                name="unique_connector_meter_value",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.measurand} {self.value} {self.unit}"
