"""deploy/nginx/levity.conf, run by Debian's nginx in front of two Levity processes.

Charge points connect over wss:// through nginx; Levity records each one's own
address (X-Forwarded-For and -Port, read by daphne's --proxy-headers), not nginx's;
a command sent through either process reaches a charge point held by either.
"""

from __future__ import annotations

import re

import httpx
import pytest
from django.conf import settings

from tests.deploy.conftest import STATIC_PROBE
from tests.deploy.topology import NGINX_CONF, rows
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.once  # the deploy topology's own PostgreSQL, not the test database

#: Charge points connect from another loopback address than nginx's, so that the
#: address Levity records can only be the charge point's.
CHARGE_POINT_ADDRESS = "127.0.0.3"


@pytest.fixture
async def through_nginx(topology):
    """Open OCPP clients to wss://nginx/ocpp/<id> from CHARGE_POINT_ADDRESS (closed after the test)."""
    clients: list[OCPPClient] = []

    async def open_client(charge_point_id: str) -> OCPPClient:
        client = await OCPPClient.open(
            topology.nginx.wss_url(charge_point_id),
            ssl=topology.certificates.client_context(),
            local_addr=(CHARGE_POINT_ADDRESS, 0),
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


async def test_levity_records_the_charge_points_own_address_through_nginx(topology, through_nginx):
    clients = [await through_nginx(f"NGX-ADDR-{n}") for n in range(4)]
    for client in clients:
        assert (await client.boot()).status == "Accepted"
    recorded = dict(
        rows(
            topology.database_url,
            "SELECT charge_point_id, remote_address FROM chargepoints_chargepoint "
            "WHERE charge_point_id LIKE 'NGX-ADDR-%%'",
        )
    )
    expected = {}
    for client in clients:
        host, port = client._connection.local_address[:2]
        expected[client.id] = f"{host}:{port}"
    assert recorded == expected
    assert all(address.startswith(f"{CHARGE_POINT_ADDRESS}:") for address in recorded.values())


async def test_nginx_spreads_charge_points_over_both_processes(topology, through_nginx):
    clients = [await through_nginx(f"NGX-SPREAD-{n}") for n in range(4)]
    for client in clients:
        await client.boot()
    holders = rows(
        topology.database_url,
        "SELECT DISTINCT server_process FROM chargepoints_chargepoint "
        "WHERE charge_point_id LIKE 'NGX-SPREAD-%%'",
    )
    assert len(holders) == 2 and None not in {h for (h,) in holders}


async def test_a_command_through_either_process_reaches_each_charge_point(topology, through_nginx):
    clients = [await through_nginx(f"NGX-CMD-{n}") for n in range(2)]
    for client in clients:
        await client.boot()
    headers = {"Authorization": f"Bearer {topology.api_token}"}
    for server in topology.levity:
        async with httpx.AsyncClient(
            base_url=f"{server.http_url}/api/v1", headers=headers, timeout=30
        ) as api:
            for client in clients:
                client.received.clear()
                response = await api.post(
                    f"/charge-points/{client.id}/commands",
                    json={"action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}},
                )
                assert response.status_code == 201, response.text
                assert (response.json()["status"], response.json()["response"]) == (
                    "accepted",
                    {"status": "Accepted"},
                )
                assert await client.wait_for_command("TriggerMessage") == {"requested_message": "Heartbeat"}


async def test_the_api_answers_through_nginx_over_tls(topology):
    async with httpx.AsyncClient(
        base_url=topology.nginx.https_url, verify=topology.certificates.client_context(), timeout=30
    ) as web:
        response = await web.get(
            "/api/v1/charge-points", headers={"Authorization": f"Bearer {topology.api_token}"}
        )
    assert response.status_code == 200, response.text
    assert "results" in response.json()


async def test_nginx_serves_static_files_itself(topology):
    async with httpx.AsyncClient(
        base_url=topology.nginx.https_url, verify=topology.certificates.client_context(), timeout=30
    ) as web:
        response = await web.get(f"/static/{STATIC_PROBE}")
    assert response.status_code == 200
    assert response.text == "served by nginx\n"
    assert response.headers["cache-control"].startswith("max-age=")


async def test_plain_http_is_redirected_to_https(topology):
    async with httpx.AsyncClient(timeout=30) as web:
        response = await web.get(f"http://127.0.0.1:{topology.nginx.http_port}/admin/")
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)([smh]?)", value)
    assert match is not None, value
    number, unit = match.groups()
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]


def test_proxy_timeouts_outlast_the_heartbeat_interval():
    """A charge point silent for a whole heartbeat interval keeps its WebSocket through nginx."""
    text = NGINX_CONF.read_text()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        [value] = re.findall(rf"^\s*{directive} (\S+);", text, flags=re.M)
        assert seconds(value) > 2 * settings.LEVITY_HEARTBEAT_INTERVAL, directive
