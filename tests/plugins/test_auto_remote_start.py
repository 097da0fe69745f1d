"""AutoRemoteStartPlugin: RemoteStartTransaction after a cable is plugged in."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from plugins import AutoRemoteStartPlugin
from plugins.testing import create_test_charge_point
from tests.conftest import DaphneServer, eventually, server_env

pytestmark = pytest.mark.django_db(transaction=True)

DELAY = 0.5


@pytest.fixture(scope="module")
def server(django_db_setup, test_db_path, tmp_path_factory):
    """daphne with AutoRemoteStartPlugin(id_tag="FREE-1", delay_seconds=0.5) for every charge point."""
    plugins = [
        {
            "class": "plugins.AutoRemoteStartPlugin",
            "options": {"id_tag": "FREE-1", "delay_seconds": DELAY},
        }
    ]
    env = server_env(test_db_path, LEVITY_PLUGINS=json.dumps(plugins))
    daphne = DaphneServer(env, tmp_path_factory.mktemp("auto_remote_start") / "daphne.log").start()
    yield daphne
    daphne.stop()


async def test_remote_start_is_sent_after_the_delay_with_the_configured_tag(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    await client.boot()
    await client.status(1, "Available")
    plugged_in = time.monotonic()
    await client.status(1, "Preparing")
    command = await client.wait_for_command("RemoteStartTransaction")
    assert time.monotonic() - plugged_in >= DELAY
    assert command == {"id_tag": "FREE-1", "connector_id": 1}
    await server.wait_for_log(f"{cp_id}/1: remote start for 'FREE-1' accepted")


async def test_each_connector_gets_its_own_remote_start(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    await client.status(2, "Preparing")
    command = await client.wait_for_command("RemoteStartTransaction")
    assert command == {"id_tag": "FREE-1", "connector_id": 2}


async def test_no_remote_start_when_the_connector_left_preparing(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    await client.status(1, "Preparing")
    await client.status(1, "Available")  # cable pulled out again
    await server.wait_for_log(f"{cp_id}/1 left Preparing (now Available); no remote start")
    assert client.received == []


async def test_no_remote_start_when_the_connector_has_an_active_transaction(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    await client.start_transaction(1, "RFID-7", 0)  # the driver used a card meanwhile
    await client.status(1, "Preparing")
    await server.wait_for_log(f"{cp_id}/1 already has an active transaction; no remote start")
    assert client.received == []


async def test_no_remote_start_after_the_charge_point_disconnected(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    await client.status(1, "Preparing")
    await client.close()
    await server.wait_for_log(f"{cp_id}/1: pending remote start cancelled (charge point disconnected)")
    await asyncio.sleep(DELAY + 0.3)
    plugin_lines = [
        line for line in server.log().splitlines() if "AutoRemoteStartPlugin" in line and cp_id in line
    ]
    assert len(plugin_lines) == 1  # only the cancellation: no start, no failed call


# --- in process, with plugins.testing ---------------------------------------------------


async def test_a_second_preparing_replaces_the_pending_start():
    cp = await create_test_charge_point(
        f"T-{uuid.uuid4().hex[:8]}", plugins=[AutoRemoteStartPlugin(delay_seconds=0.3)]
    )
    cp.connection.answer("RemoteStartTransaction", {"status": "Accepted"})
    first = time.monotonic()
    await cp.on_status_notification(1, "NoError", "Preparing")
    await asyncio.sleep(0.15)
    await cp.on_status_notification(1, "NoError", "Preparing")
    sent = await cp.connection.wait_for_call("RemoteStartTransaction")
    assert time.monotonic() - first >= 0.45
    await asyncio.sleep(0.4)
    assert [c.payload for c in cp.connection.calls()] == [{"connectorId": 1, "idTag": "anonymous"}]
    assert sent.payload == {"connectorId": 1, "idTag": "anonymous"}
    await cp.shutdown()


async def test_cleanup_cancels_the_pending_start():
    cp = await create_test_charge_point(
        f"T-{uuid.uuid4().hex[:8]}", plugins=[AutoRemoteStartPlugin(delay_seconds=0.2)]
    )
    await cp.on_status_notification(1, "NoError", "Preparing")
    await cp.shutdown(1000)
    await asyncio.sleep(0.4)
    assert cp.connection.calls() == []


async def test_a_refused_remote_start_is_logged(caplog):
    cp = await create_test_charge_point(
        f"T-{uuid.uuid4().hex[:8]}", plugins=[AutoRemoteStartPlugin(delay_seconds=0)]
    )
    cp.connection.answer("RemoteStartTransaction", {"status": "Rejected"})
    await cp.on_status_notification(3, "NoError", "Preparing")
    await cp.connection.wait_for_call("RemoteStartTransaction")
    await eventually(
        lambda: (
            "levity.plugins.AutoRemoteStartPlugin",
            f"{cp.id}/3 answered RemoteStartTransaction: Rejected",
        )
        in [(r.name, r.getMessage()) for r in caplog.records]
    )
    await cp.shutdown()


@pytest.mark.parametrize(
    "options, error",
    [
        ({"id_tag": "X" * 21}, "id_tag must be 1 to 20 characters"),
        ({"delay_seconds": "1"}, "delay_seconds must be a number"),
        ({"delay_seconds": -0.5}, "delay_seconds must not be negative"),
    ],
)
def test_bad_options_are_refused(options, error):
    with pytest.raises(ValueError, match=error):
        AutoRemoteStartPlugin(**options)
