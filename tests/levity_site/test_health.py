"""/healthz (the process is alive) and /readyz (database and channel layer reachable)."""

from __future__ import annotations

import httpx
import pytest

from bench.processes import RedisServer, free_port
from tests.services import program

pytestmark = pytest.mark.django_db(transaction=True)


async def get(server, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        return await http.get(path)


async def test_healthz_answers_ok_without_authentication(daphne_server):
    response = await get(daphne_server, "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response.headers["Cache-Control"]


async def test_readyz_is_ok_when_database_and_channel_layer_answer(daphne_server):
    response = await get(daphne_server, "/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


@pytest.mark.once  # its own unreachable database, not the test database
async def test_readyz_is_503_naming_the_database_when_it_is_unreachable(start_daphne):
    # Start-up registers the process in the database: a pool timeout of 1 s (not the
    # default 10 s) lets it give up on that within daphne's start timeout on a loaded machine.
    server = start_daphne(
        DATABASE_URL=f"postgres://levity@127.0.0.1:{free_port()}/levity",
        DATABASE_POOL_TIMEOUT="1",
        LEVITY_READY_TIMEOUT="1",
    )
    response = await get(server, "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["channel_layer"] == "ok"
    # Refused at once, or (the pool retrying) no connection within the timeout.
    assert body["checks"]["database"] in {"no answer within 1 s"} or body["checks"]["database"].startswith(
        "OperationalError"
    ), body
    healthz = await get(server, "/healthz")  # alive all the same: no restart for a database outage
    assert healthz.status_code == 200


async def test_readyz_follows_redis_going_away_and_coming_back(start_daphne, tmp_path):
    program("redis-server", "redis-server")
    redis = RedisServer(tmp_path).start(timeout=10)
    try:
        server = start_daphne(REDIS_URL=redis.url, LEVITY_READY_TIMEOUT="2")
        assert (await get(server, "/readyz")).status_code == 200
        redis.stop()
        response = await get(server, "/readyz")
        assert response.status_code == 503, response.text
        assert response.json()["checks"]["database"] == "ok"
        assert response.json()["checks"]["channel_layer"] != "ok"
        redis = RedisServer(tmp_path, port=redis.port).start(timeout=10)
        assert (await get(server, "/readyz")).status_code == 200
    finally:
        redis.stop()
