"""The outbox: one row per notification to deliver, written with the transaction it reports."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: ``max_attempts`` reached; an operator's "retry now" makes it pending again.
    FAILED = "failed"


class OutboxDelivery(models.Model):
    """A webhook notification (transaction_start or transaction_stop) and its delivery.

    Written in the database transaction that records the start or stop, so that a
    recorded transaction always has its notification, and a failed write none.
    The delivery worker posts it, at least once, with ``idempotency_key`` in the
    ``Idempotency-Key`` header; a transaction's notifications go out in order.
    """

    transaction = models.ForeignKey(
        "transactions.Transaction", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=32)
    webhook_url = models.CharField("webhook URL", max_length=2000)
    payload = models.JSONField()
    idempotency_key = models.CharField(max_length=64, help_text="<transaction id>:<event>")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The plugin's delivery options when the event was recorded.
    timeout = models.FloatField(help_text="Seconds per POST.")
    max_attempts = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    retry_delay = models.FloatField(help_text="Seconds before the first retry; doubled after each.")
    retry_delay_max = models.FloatField(help_text="The longest delay between two attempts.")

    class Meta:
        ordering = ["-id"]
        verbose_name = "outbox delivery"
        verbose_name_plural = "outbox deliveries"
        constraints = [
            models.UniqueConstraint(fields=["webhook_url", "idempotency_key"], name="unique_webhook_delivery")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} of #{self.transaction_id} to {self.webhook_url}"
