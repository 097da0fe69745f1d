"""TransactionNotificationPlugin across server processes: a restart, and two at once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from plugins.transaction_webhook.models import DeliveryState, OutboxDelivery
from tests.conftest import eventually
from tests.plugins.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    webhook = WebhookReceiver().start()
    yield webhook
    webhook.stop()


def webhook_plugins(url: str, charge_points: list[str]) -> str:
    return json.dumps(
        [
            {
                "class": "plugins.TransactionNotificationPlugin",
                "options": {"webhook_url": url, "retry_delay": 0.2, "retry_delay_max": 0.5},
                "charge_points": charge_points,
            }
        ]
    )


async def test_undelivered_notifications_are_delivered_after_a_restart(connect, start_daphne, receiver):
    plugins = webhook_plugins(f"{receiver.url}/down", ["CP-RESTART-WEBHOOK"])
    receiver.down("/down")
    first = start_daphne(LEVITY_PLUGINS=plugins)
    client = await connect("CP-RESTART-WEBHOOK", server=first)
    started = await client.start_transaction(1, "DRIVER-R", 0)
    tx = started.transaction_id
    await client.stop_transaction(tx, 30)
    await eventually(lambda: len(receiver.of(tx)) >= 2, timeout=30, what="the first server's failed attempts")
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


async def test_two_server_processes_post_each_notification_once(connect, start_daphne, receiver):
    charge_points = [f"CP-TWO-WEBHOOK-{n}" for n in range(6)]
    plugins = webhook_plugins(f"{receiver.url}/two", charge_points)
    servers = [start_daphne(LEVITY_PLUGINS=plugins), start_daphne(LEVITY_PLUGINS=plugins)]
    clients = [
        await connect(charge_point, server=servers[n % 2]) for n, charge_point in enumerate(charge_points)
    ]
    # Slow posts: both workers have rows claimed at the same time.
    receiver.delay("/two", 0.3)

    async def charge(client, n: int) -> int:
        started = await client.start_transaction(1, f"DRIVER-{n}", 0)
        await client.stop_transaction(started.transaction_id, 10)
        return started.transaction_id

    transaction_ids = await asyncio.gather(*(charge(c, n) for n, c in enumerate(clients)))
    rows = OutboxDelivery.objects.filter(transaction_id__in=transaction_ids)

    async def all_delivered():
        states = [r.state async for r in rows.all()]  # .all(): a queryset caches its rows
        return len(states) == 12 and all(s == DeliveryState.DELIVERED for s in states)

    await eventually(all_delivered, timeout=60, what="12 deliveries")
    posted = Counter(p.idempotency_key for p in receiver.to("/two"))
    assert posted == Counter(
        {f"{tx}:{event}": 1 for tx in transaction_ids for event in ("transaction_start", "transaction_stop")}
    )
