"""TransactionNotificationPlugin: notifications not yet delivered survive a server restart."""

from __future__ import annotations

import json

import pytest

from plugins.transaction_webhook.models import DeliveryState, OutboxDelivery
from tests.plugins.webhook_receiver import WebhookReceiver, eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    webhook = WebhookReceiver().start()
    yield webhook
    webhook.stop()


async def test_undelivered_notifications_are_delivered_after_a_restart(connect, start_daphne, receiver):
    plugins = json.dumps(
        [
            {
                "class": "plugins.TransactionNotificationPlugin",
                "options": {"webhook_url": f"{receiver.url}/down", "retry_delay": 0.2, "retry_delay_max": 0.5},
                "charge_points": ["CP-RESTART-WEBHOOK"],
            }
        ]
    )
    receiver.down("/down")
    first = start_daphne(LEVITY_PLUGINS=plugins)
    client = await connect("CP-RESTART-WEBHOOK", server=first)
    started = await client.start_transaction(1, "DRIVER-R", 0)
    tx = started.transaction_id
    await client.stop_transaction(tx, 30)
    await eventually(lambda: len(receiver.of(tx)) >= 2, what="the first server's failed attempts")
    await client.close()
    first.stop()
    assert {(r.event, r.state) async for r in OutboxDelivery.objects.filter(transaction_id=tx)} == {
        ("transaction_start", DeliveryState.PENDING),
        ("transaction_stop", DeliveryState.PENDING),
    }

    receiver.down("/down", False)
    start_daphne(LEVITY_PLUGINS=plugins)  # no charge point connects to it

    async def all_delivered():
        rows = [r async for r in OutboxDelivery.objects.filter(transaction_id=tx).order_by("id")]
        return all(r.state == DeliveryState.DELIVERED for r in rows)

    await eventually(all_delivered, timeout=60, what="the deliveries after the restart")
    accepted = [p.body["event"] for p in receiver.of(tx) if p.status == 204]
    assert accepted == ["transaction_start", "transaction_stop"]
    assert all(p.body["event"] == "transaction_start" for p in receiver.of(tx) if p.status == 503)
