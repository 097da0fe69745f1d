"""TransactionNotificationPlugin (docs/plugins.md's webhook example): outbox delivery to a local webhook."""

from __future__ import annotations

import json

import pytest

from plugins import TransactionNotificationPlugin
from plugins.transaction_webhook.models import DeliveryState, OutboxDelivery
from tests.conftest import DaphneServer, eventually, server_env
from tests.ocpp_client import now_iso
from tests.plugins.outbox_probe.apps import FAILING_ID_TAG
from tests.plugins.webhook_receiver import WebhookReceiver
from transactions.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True)

#: charge point -> the path of the receiver its plugin posts to.
ENDPOINTS = {
    "CP-WEBHOOK": "/hook",
    "CP-FLAKY-WEBHOOK": "/flaky",
    "CP-KEY-WEBHOOK": "/key",
    "CP-REPEAT-WEBHOOK": "/repeat",
    "CP-SLOW-WEBHOOK": "/slow",
    "CP-FAILING-WEBHOOK": "/fail",
    "CP-PROBE-WEBHOOK": "/probe",
}
RETRIES = {"retry_delay": 0.2, "retry_delay_max": 0.5}


@pytest.fixture(scope="module")
def receiver():
    webhook = WebhookReceiver().start()
    yield webhook
    webhook.stop()


@pytest.fixture(scope="module")
def server(django_db_setup, test_db_path, tmp_path_factory, receiver):
    """daphne whose webhook plugin posts to the receiver, per charge point one endpoint."""
    plugins = [
        {
            "class": "plugins.TransactionNotificationPlugin",
            "options": {"webhook_url": f"{receiver.url}{path}", "timeout": 5, **RETRIES},
            "charge_points": [charge_point],
        }
        for charge_point, path in ENDPOINTS.items()
        if path != "/fail"
    ]
    plugins.append(
        {
            "class": "plugins.TransactionNotificationPlugin",
            "options": {"webhook_url": f"{receiver.url}/fail", "max_attempts": 2, **RETRIES},
            "charge_points": ["CP-FAILING-WEBHOOK"],
        }
    )
    env = server_env(
        test_db_path,
        LEVITY_PLUGINS=json.dumps(plugins),
        LEVITY_EXTRA_APPS="tests.plugins.outbox_probe",
    )
    daphne = DaphneServer(env, tmp_path_factory.mktemp("webhook") / "daphne.log").start()
    yield daphne
    daphne.stop()


@pytest.fixture(autouse=True)
def fresh_receiver(receiver):
    receiver.clear()


async def deliveries(transaction_id: int) -> list[OutboxDelivery]:
    return [row async for row in OutboxDelivery.objects.filter(transaction_id=transaction_id).order_by("id")]


async def delivered(transaction_id: int, count: int) -> list[OutboxDelivery]:
    async def check():
        rows = await deliveries(transaction_id)
        return rows if len(rows) == count and all(r.state == DeliveryState.DELIVERED for r in rows) else None

    return await eventually(check, timeout=30, what=f"{count} deliveries of transaction {transaction_id}")


async def test_start_and_stop_are_posted_as_json(connect, server, receiver):
    client = await connect("CP-WEBHOOK", server=server)
    started = await client.start_transaction(2, "DRIVER-1", 1500)
    await client.stop_transaction(started.transaction_id, 4200, reason="EVDisconnected")
    tx = started.transaction_id
    await delivered(tx, 2)
    assert [(p.path, p.content_type, p.body) for p in receiver.of(tx)] == [
        (
            "/hook",
            "application/json",
            {
                "event": "transaction_start",
                "charge_point_id": "CP-WEBHOOK",
                "connector_id": 2,
                "id_tag": "DRIVER-1",
                "meter_start": 1500,
                "transaction_id": tx,
            },
        ),
        (
            "/hook",
            "application/json",
            {
                "event": "transaction_stop",
                "charge_point_id": "CP-WEBHOOK",
                "transaction_id": tx,
                "meter_stop": 4200,
                "reason": "EVDisconnected",
            },
        ),
    ]
    await server.wait_for_log(f"Sent transaction_stop notification for tx {tx}", timeout=30)


async def test_a_stop_without_reason_is_posted_with_an_empty_reason(connect, server, receiver):
    client = await connect("CP-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-1", 0)
    await client.stop_transaction(started.transaction_id, 10)
    await delivered(started.transaction_id, 2)
    assert receiver.of(started.transaction_id)[1].body["reason"] == ""


async def test_a_failing_webhook_gets_each_notification_once_in_order(connect, server, receiver):
    receiver.fail("/flaky", 3)
    client = await connect("CP-FLAKY-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-4", 0)
    await client.stop_transaction(started.transaction_id, 100)
    rows = await delivered(started.transaction_id, 2)
    posts = receiver.of(started.transaction_id)
    accepted = [p.body["event"] for p in posts if p.status == 204]
    assert accepted == ["transaction_start", "transaction_stop"]
    assert [p.status for p in posts].count(500) == 3
    # The stop is not even tried before the start was delivered.
    events = [p.body["event"] for p in posts]
    assert events == ["transaction_start"] * 4 + ["transaction_stop"]
    assert [(r.event, r.attempts) for r in rows] == [("transaction_start", 4), ("transaction_stop", 1)]
    assert rows[0].last_error == ""


async def test_the_idempotency_key_is_sent_and_stable_across_retries(connect, server, receiver):
    receiver.fail("/key", 2)
    client = await connect("CP-KEY-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-5", 0)
    tx = started.transaction_id
    await delivered(tx, 1)
    assert [(p.status, p.idempotency_key) for p in receiver.of(tx)] == [
        (500, f"{tx}:transaction_start"),
        (500, f"{tx}:transaction_start"),
        (204, f"{tx}:transaction_start"),
    ]
    await client.stop_transaction(tx, 5)
    await delivered(tx, 2)
    assert receiver.of(tx)[-1].idempotency_key == f"{tx}:transaction_stop"


async def test_a_repeated_stop_transaction_is_posted_once(connect, server, receiver):
    client = await connect("CP-REPEAT-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-6", 0)
    tx = started.transaction_id
    stopped_at = now_iso()
    assert await client.stop_transaction(tx, 50, timestamp=stopped_at) is not None
    assert await client.stop_transaction(tx, 50, timestamp=stopped_at) is not None  # its answer was lost
    assert await client.stop_transaction(tx, 60) is not None  # a late, different stop
    await delivered(tx, 2)
    assert [p.body["event"] for p in receiver.of(tx)] == ["transaction_start", "transaction_stop"]
    assert receiver.of(tx)[1].body["meter_stop"] == 50


async def test_a_repeated_start_transaction_is_posted_once(connect, server, receiver):
    client = await connect("CP-REPEAT-WEBHOOK", server=server)
    started_at = now_iso()
    started = await client.start_transaction(2, "DRIVER-10", 7, timestamp=started_at)
    again = await client.start_transaction(2, "DRIVER-10", 7, timestamp=started_at)  # its answer was lost
    assert again.transaction_id == started.transaction_id
    await client.stop_transaction(started.transaction_id, 9)
    await delivered(started.transaction_id, 2)
    assert [p.body["event"] for p in receiver.of(started.transaction_id)] == [
        "transaction_start",
        "transaction_stop",
    ]


async def test_a_disconnect_right_after_stop_transaction_loses_no_notification(connect, server, receiver):
    # Each POST takes longer than the AFTER hooks' grace at a disconnect (2 s).
    receiver.delay("/slow", 2.5)
    client = await connect("CP-SLOW-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-7", 0)
    await client.stop_transaction(started.transaction_id, 70)
    await client.close()
    await delivered(started.transaction_id, 2)
    assert [(p.status, p.body["event"]) for p in receiver.of(started.transaction_id)] == [
        (204, "transaction_start"),
        (204, "transaction_stop"),
    ]


async def test_the_charge_point_is_answered_before_the_webhook(connect, server, receiver):
    receiver.delay("/slow", 2.5)
    client = await connect("CP-SLOW-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-8", 0)
    # Answered; the notification is still on its way (the webhook takes 2.5 s).
    assert receiver.of(started.transaction_id) == []
    await delivered(started.transaction_id, 1)


async def test_a_webhook_error_status_is_logged_and_retried_up_to_max_attempts(connect, server, receiver):
    receiver.down("/fail")
    client = await connect("CP-FAILING-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-3", 0)
    tx = started.transaction_id
    await server.wait_for_log(
        "ERROR levity.plugins.TransactionNotificationPlugin: Webhook answered 503 to "
        f"transaction_start notification for tx {tx} (attempt 2)",
        timeout=30,
    )

    async def failed():
        rows = await deliveries(tx)
        return rows if rows and rows[0].state == DeliveryState.FAILED else None

    [row] = await eventually(failed, timeout=30, what="the delivery given up")
    assert (row.attempts, row.last_error) == (2, "HTTP 503")
    assert [p.status for p in receiver.of(tx)] == [503, 503]


async def test_no_outbox_row_is_written_when_the_start_fails(connect, server, receiver):
    client = await connect("CP-PROBE-WEBHOOK", server=server)
    # The probe app fails the start in its transaction, after the outbox row was added.
    assert await client.start_transaction(1, FAILING_ID_TAG, 0) is None  # CALLERROR InternalError
    await server.wait_for_log("fails after its outbox row", timeout=30)
    assert not await Transaction.objects.filter(id_tag=FAILING_ID_TAG).aexists()
    assert not await OutboxDelivery.objects.filter(payload__id_tag=FAILING_ID_TAG).aexists()
    # The same charge point's next start is written, with its notification.
    started = await client.start_transaction(1, "DRIVER-9", 0)
    await delivered(started.transaction_id, 1)
    assert [p.body["id_tag"] for p in receiver.to("/probe")] == ["DRIVER-9"]


@pytest.mark.parametrize(
    "options, error",
    [
        ({"webhook_url": "ftp://example.com/"}, "webhook_url must be an http:// or https:// URL"),
        ({"webhook_url": "http://127.0.0.1/", "timeout": 0}, "timeout must be a positive number"),
        ({"webhook_url": "http://127.0.0.1/", "retry_delay": -1}, "retry_delay must be a positive number"),
        ({"webhook_url": "http://127.0.0.1/", "retry_delay_max": "x"}, "retry_delay_max must be a positive"),
        ({"webhook_url": "http://127.0.0.1/", "max_attempts": 0}, "max_attempts must be a positive integer"),
    ],
)
def test_bad_options_are_refused(options, error):
    with pytest.raises(ValueError, match=error):
        TransactionNotificationPlugin(**options)
