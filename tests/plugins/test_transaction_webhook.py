"""TransactionNotificationPlugin (docs/plugins.md's webhook example) against a local HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plugins import TransactionNotificationPlugin
from tests.conftest import DaphneServer, eventually, server_env

pytestmark = pytest.mark.django_db(transaction=True)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records POSTed JSON; /slow answers late, /fail with 500."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    (self.path, self.headers["Content-Type"], json.loads(body))
                )
                if self.path == "/slow":
                    time.sleep(2)
                self.send_response(500 if self.path == "/fail" else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    async def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, str, dict]]:
        def received() -> list[tuple[str, str, dict]]:
            assert len(self.received) >= count, f"{len(self.received)} notifications, expected {count}"
            return self.received

        return await eventually(received, timeout=timeout, interval=0.02)


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
            "options": {"webhook_url": f"{receiver.url}/hook"},
            "charge_points": ["CP-WEBHOOK"],
        },
        {
            "class": "plugins.TransactionNotificationPlugin",
            "options": {"webhook_url": f"{receiver.url}/slow", "timeout": 0.3},
            "charge_points": ["CP-SLOW-WEBHOOK"],
        },
        {
            "class": "plugins.TransactionNotificationPlugin",
            "options": {"webhook_url": f"{receiver.url}/fail"},
            "charge_points": ["CP-FAILING-WEBHOOK"],
        },
    ]
    env = server_env(test_db_path, LEVITY_PLUGINS=json.dumps(plugins))
    daphne = DaphneServer(env, tmp_path_factory.mktemp("webhook") / "daphne.log").start()
    yield daphne
    daphne.stop()


@pytest.fixture(autouse=True)
def fresh_receiver(receiver):
    receiver.received.clear()


async def test_start_and_stop_are_posted_as_json(connect, server, receiver):
    client = await connect("CP-WEBHOOK", server=server)
    started = await client.start_transaction(2, "DRIVER-1", 1500)
    await client.stop_transaction(started.transaction_id, 4200, reason="EVDisconnected")
    notifications = await receiver.wait_for(2)
    assert notifications == [
        (
            "/hook",
            "application/json",
            {
                "event": "transaction_start",
                "charge_point_id": "CP-WEBHOOK",
                "connector_id": 2,
                "id_tag": "DRIVER-1",
                "meter_start": 1500,
                "transaction_id": started.transaction_id,
            },
        ),
        (
            "/hook",
            "application/json",
            {
                "event": "transaction_stop",
                "charge_point_id": "CP-WEBHOOK",
                "transaction_id": started.transaction_id,
                "meter_stop": 4200,
                "reason": "EVDisconnected",
            },
        ),
    ]
    await server.wait_for_log(
        f"Sent transaction_stop notification for tx {started.transaction_id}"
    )


async def test_a_stop_without_reason_is_posted_with_an_empty_reason(connect, server, receiver):
    client = await connect("CP-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-1", 0)
    await client.stop_transaction(started.transaction_id, 10)
    notifications = await receiver.wait_for(2)
    assert notifications[1][2]["reason"] == ""


async def test_a_slow_webhook_delays_no_answer_and_its_timeout_is_logged(connect, server, receiver):
    client = await connect("CP-SLOW-WEBHOOK", server=server)
    sent = time.monotonic()
    started = await client.start_transaction(1, "DRIVER-2", 0)
    assert time.monotonic() - sent < 0.3  # the webhook runs after the answer
    await receiver.wait_for(1)
    await server.wait_for_log(
        "ERROR levity.plugins.TransactionNotificationPlugin: Failed to send transaction_start "
        f"notification for tx {started.transaction_id}",
    )
    assert (await client.stop_transaction(started.transaction_id, 5)) is not None


async def test_a_webhook_error_status_is_logged(connect, server, receiver):
    client = await connect("CP-FAILING-WEBHOOK", server=server)
    started = await client.start_transaction(1, "DRIVER-3", 0)
    await server.wait_for_log(
        "ERROR levity.plugins.TransactionNotificationPlugin: Webhook answered 500 to "
        f"transaction_start notification for tx {started.transaction_id}",
    )


@pytest.mark.parametrize(
    "options, error",
    [
        ({"webhook_url": "ftp://example.com/"}, "webhook_url must be an http:// or https:// URL"),
        ({"webhook_url": "http://127.0.0.1/", "timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_bad_options_are_refused(options, error):
    with pytest.raises(ValueError, match=error):
        TransactionNotificationPlugin(**options)
