"""REDIS_URL: commands reach the charge point through whichever daphne process holds its socket.

A real redis-server (the installed binary, on a free port, in a temp dir) and two
real daphne processes sharing the test database.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from bench.processes import RedisServer
from chargepoints.models import ChargePoint, ChargePointCommand
from tests.conftest import DaphneServer, server_env
from tests.ocpp_client import OCPPClient
from tests.services import program

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    program("redis-server", "redis-server")
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start(timeout=10)
    yield redis.url
    redis.stop()


@pytest.fixture(scope="module")
def two_servers(django_db_setup, test_db_path, redis_url, tmp_path_factory):
    """Two daphne processes on one redis (shared by this module's tests)."""
    env = server_env(test_db_path, REDIS_URL=redis_url, LEVITY_COMMAND_ROUTE_TIMEOUT="1")
    logs = tmp_path_factory.mktemp("daphne-redis")
    servers = [DaphneServer(env, logs / f"daphne-{n}.log").start() for n in range(2)]
    yield servers
    for server in servers:
        server.stop()


@contextlib.asynccontextmanager
async def api_of(server, token: str):
    async with httpx.AsyncClient(
        base_url=f"{server.http_url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


async def test_command_through_one_process_reaches_a_charge_point_on_the_other(
    two_servers, connect, cp_id, api_token
):
    holder, other = two_servers
    client = await connect(cp_id, server=holder)
    await client.boot()
    async with api_of(other, api_token) as api:
        response = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "ChangeAvailability", "payload": {"connectorId": 1, "type": "Inoperative"}},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["response"]) == ("accepted", {"status": "Accepted"})
    assert await client.wait_for_command("ChangeAvailability") == {"connector_id": 1, "type": "Inoperative"}
    stored = await ChargePointCommand.objects.aget(pk=body["id"])
    assert stored.status == "accepted" and stored.sent_at is not None and stored.duration_ms is not None


async def test_callerror_from_a_charge_point_on_the_other_process_is_502(
    two_servers, connect, cp_id, api_token
):
    from ocpp.exceptions import NotSupportedError

    holder, other = two_servers
    client = await connect(cp_id, server=holder)
    client.answers["ClearCache"] = NotSupportedError(description="no cache here")
    async with api_of(other, api_token) as api:
        response = await api.post(f"/charge-points/{cp_id}/commands", json={"action": "ClearCache"})
    assert response.status_code == 502
    assert response.json()["command"]["error_code"] == "NotSupported"


async def test_timeout_on_the_other_process_is_504(two_servers, connect, cp_id, api_token):
    holder, other = two_servers
    client = await connect(cp_id, server=holder)
    client.delays["Reset"] = 2
    async with api_of(other, api_token) as api:
        response = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "Reset", "payload": {"type": "Soft"}, "timeout": 0.5},
        )
    assert response.status_code == 504
    assert response.json()["detail"] == "No answer within 0.5 s"


async def test_answer_slower_than_the_route_timeout_still_reaches_the_other_process(
    two_servers, connect, cp_id, api_token
):
    holder, other = two_servers
    client = await connect(cp_id, server=holder)
    client.delays["Reset"] = 1.5  # the route timeout is 1 s: the holder must acknowledge
    async with api_of(other, api_token) as api:
        response = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "Reset", "payload": {"type": "Soft"}, "timeout": 5},
        )
    assert response.status_code == 201, response.text
    assert response.json()["response"] == {"status": "Accepted"}


async def test_charge_point_connected_to_no_process_is_409(two_servers, connect, cp_id, api_token):
    holder, other = two_servers
    await (await connect(cp_id, server=holder)).close()
    await holder.wait_for_log(f"{cp_id} disconnected")
    async with api_of(other, api_token) as api:
        response = await api.post(f"/charge-points/{cp_id}/commands", json={"action": "ClearCache"})
    assert response.status_code == 409
    assert response.json()["detail"] == f"{cp_id} is not connected to any server process"


async def test_reconnect_to_another_process_closes_the_old_session_and_keeps_it_online(
    two_servers, connect, cp_id, api_token
):
    first, second = two_servers
    old = await connect(cp_id, server=first)
    await old.boot()
    new = await connect(cp_id, server=second)
    await new.boot()
    assert await old.closed_by_server() == 4000
    await first.wait_for_log(f"{cp_id} disconnected (code 4000)")  # its end is recorded, and
    assert (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected
    async with api_of(first, api_token) as api:
        response = await api.post(f"/charge-points/{cp_id}/commands", json={"action": "ClearCache"})
    assert response.status_code == 201
    assert [name for name, _ in new.received] == ["ClearCache"]


@pytest.fixture
def redis_channel_layer_here(settings, redis_url):
    """This test process on the servers' Redis channel layer (for sessions served here)."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_command_through_a_server_process_reaches_a_session_served_the_third_way(
    two_servers, redis_channel_layer_here, third_way, cp_id, api_token
):
    _, other = two_servers
    client = await OCPPClient.open(third_way.url(cp_id))
    try:
        await client.boot()
        async with api_of(other, api_token) as api:
            response = await api.post(
                f"/charge-points/{cp_id}/commands", json={"action": "Reset", "payload": {"type": "Hard"}}
            )
        assert response.status_code == 201, response.text
        assert response.json()["response"] == {"status": "Accepted"}
        assert await client.wait_for_command("Reset") == {"type": "Hard"}
    finally:
        await client.close()


async def test_a_third_way_session_is_closed_when_its_charge_point_reconnects_to_a_server_process(
    two_servers, redis_channel_layer_here, third_way, connect, cp_id
):
    holder, _ = two_servers
    old = await OCPPClient.open(third_way.url(cp_id))
    await old.boot()
    new = await connect(cp_id, server=holder)
    await new.boot()
    assert await old.closed_by_server() == 4000
