"""Operators see the outbox (read-only) and may have deliveries retried now."""

from __future__ import annotations

from django.contrib import admin, messages

from . import delivery, outbox
from .models import OutboxDelivery


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "transaction",
        "webhook_url",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["state", "event"]
    search_fields = ["idempotency_key", "webhook_url"]
    list_select_related = ["transaction__charge_point"]
    actions = ["retry_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("transaction_webhook.change_outboxdelivery")

    @admin.action(description="Retry the selected deliveries now", permissions=["retry"])
    def retry_now(self, request, queryset) -> None:
        count = outbox.retry_now(queryset)
        delivery.wake()
        self.message_user(
            request,
            f"{count} deliveries will be retried now (delivered ones are left as they are).",
            messages.SUCCESS,
        )
