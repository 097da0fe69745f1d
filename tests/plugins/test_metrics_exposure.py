"""/metrics is never public by accident: loopback metrics port, a token on the main port."""

from __future__ import annotations

import httpx
import psutil
import pytest

from bench.processes import free_port
from tests.conftest import METRICS_TOKEN
from tests.plugins.conftest import plugins_env

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_PLUGIN = plugins_env({"class": "plugins.PrometheusMetricsPlugin"})


@pytest.fixture(scope="module")
def metrics_server(module_daphne):
    """A server with the metrics plugin and the tests' LEVITY_METRICS_TOKEN."""
    return module_daphne(LEVITY_PLUGINS=METRICS_PLUGIN)


async def get(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.get(url, headers=headers)


@pytest.mark.once  # refused before the database is read
async def test_without_a_token_the_main_port_does_not_serve_metrics(start_daphne):
    server = start_daphne(LEVITY_PLUGINS=METRICS_PLUGIN, LEVITY_METRICS_TOKEN="")
    response = await get(server.http_url + "/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 404


@pytest.mark.once  # refused before the database is read
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}"])
async def test_the_main_port_refuses_metrics_without_the_token(metrics_server, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await get(metrics_server.http_url + "/metrics", **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "ocpp_" not in response.text


async def test_the_main_port_serves_metrics_with_the_token(metrics_server):
    response = await get(metrics_server.http_url + "/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200 and "ocpp_" in response.text


async def test_the_metrics_port_listens_on_loopback_by_default(start_daphne):
    port = free_port()
    server = start_daphne(LEVITY_METRICS_PORT=str(port))
    listening = [
        c.laddr.ip
        for c in psutil.Process(server.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening == ["127.0.0.1"]
    assert (await get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
