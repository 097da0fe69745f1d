"""In a server process: start the delivery worker if there is anything to deliver."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.dispatch import receiver

from plugins.loading import configuration
from plugins.signals import server_started

from . import delivery
from .models import DeliveryState, OutboxDelivery
from .plugin import TransactionNotificationPlugin

logger = logging.getLogger("levity.plugins.TransactionNotificationPlugin")


@receiver(server_started, dispatch_uid="levity.transaction_webhook.server_started")
def start_delivery(sender: Any, **kwargs: Any) -> None:
    """Start the worker now when the plugin is configured or rows wait (e.g. after a restart).

    Otherwise the plugin starts it when it is first used (a LEVITY_PLUGIN_FACTORY's).
    """
    configured = any(
        issubclass(entry.plugin_class, TransactionNotificationPlugin) for entry in configuration().entries
    )
    try:
        waiting = OutboxDelivery.objects.filter(state=DeliveryState.PENDING).exists()
    except DatabaseError:
        logger.exception("Cannot read the webhook outbox (is the database migrated?)")
        waiting = False
    if configured or waiting:
        delivery.ensure_started()
