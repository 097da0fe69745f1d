"""A server process ends under load (SIGTERM, SIGKILL) or Redis goes away while two serve.

Charge points charge on two daphne processes sharing the test database; one process
is stopped or killed, its charge points reconnect to the survivor and resend what
was not acknowledged, as real charge points do. Afterwards every acknowledged
message is stored, nothing is half-written, and the survivor serves all of them.
``LEVITY_RELIABILITY_CHARGE_POINTS`` sets how many charge points the victim serves
(100 by default; the bench run uses 500).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
from asgiref.sync import sync_to_async

from bench.processes import RedisServer
from tests.conftest import eventually
from tests.reliability.conftest import (
    Ledger,
    Persistence,
    assert_nothing_lost,
    charge,
    stored_against_acknowledged,
)
from tests.services import program

pytestmark = pytest.mark.django_db(transaction=True)

CHARGE_POINTS = int(os.environ.get("LEVITY_RELIABILITY_CHARGE_POINTS", "100"))


async def open_all(ids: list[str], server) -> list[Ledger]:
    async def open_one(charge_point_id: str) -> Ledger:
        return await Ledger(charge_point_id, server.ws_url(charge_point_id)).open()

    ledgers = []
    for start in range(0, len(ids), 50):  # a burst of 50 handshakes at a time
        ledgers += await asyncio.gather(*(open_one(i) for i in ids[start : start + 50]))
    return ledgers


def reconnect_to(server):
    async def reconnect(ledger: Ledger) -> None:
        await ledger.close()

        async def reopened() -> bool:
            try:
                await ledger.open(server.ws_url(ledger.charge_point_id))
            except OSError as exc:
                raise AssertionError(f"the survivor refused the reconnect: {exc!r}") from exc
            return True

        await eventually(reopened, timeout=60, interval=0.2)

    return reconnect


async def process_ends_under_load(start_daphne, how: str, count: int) -> tuple[dict, Persistence]:
    victim, survivor = start_daphne(), start_daphne()
    tag = f"{how[:4]}{time.time_ns() % 10**8}"
    ledgers = await open_all([f"{tag}-{n}" for n in range(count)], victim)
    bystanders = await open_all([f"{tag}-s{n}" for n in range(3)], survivor)
    persistence = Persistence(reconnect=reconnect_to(survivor), deadline=180)
    workload = asyncio.gather(
        *(charge(ledger, persistence, sessions=2, samples=3, pause=0.2) for ledger in ledgers + bystanders)
    )
    total = (count + 3) * 10
    await eventually(lambda: sum(len(led.answers) for led in ledgers) >= total // 5, timeout=120)
    if how == "SIGKILL":
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(30)
    else:
        await asyncio.to_thread(victim.stop)  # SIGTERM, as a service manager stops it
    await asyncio.wait_for(workload, 300)
    for ledger in ledgers + bystanders:
        assert ledger.url.startswith(survivor.ws_url("")), ledger.url
        assert (await ledger.call("Heartbeat", {}))[0] == 3
        await ledger.close()
    figures = await sync_to_async(stored_against_acknowledged)(ledgers + bystanders)
    return figures, persistence


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_charge_points_of_a_process_that_ends_reconnect_to_the_survivor_losing_nothing(
    start_daphne, record, how
):
    count = CHARGE_POINTS if how == "SIGKILL" else max(10, CHARGE_POINTS // 4)
    started = time.monotonic()
    figures, persistence = await process_ends_under_load(start_daphne, how, count)
    record(
        f"process_{how.lower()}",
        fault=f"{how} of one of two daphne processes under load",
        reconnects=persistence.reconnects,
        internal_errors=persistence.internal_errors,
        seconds=round(time.monotonic() - started, 1),
        **figures,
    )
    assert persistence.reconnects >= count  # every charge point of the victim came back
    assert_nothing_lost(figures)


# --- Redis stopped and restarted ------------------------------------------------


async def test_redis_stopped_and_restarted_while_two_processes_serve(
    start_daphne, tmp_path, api_token, record
):
    program("redis-server", "redis-server")
    redis = RedisServer(tmp_path).start(timeout=10)
    env = {"REDIS_URL": redis.url, "LEVITY_COMMAND_ROUTE_TIMEOUT": "2"}
    first, second = start_daphne(**env), start_daphne(**env)
    tag = f"REDIS{time.time_ns() % 10**8}"
    ledgers = await open_all([f"{tag}-a{n}" for n in range(5)], first)
    ledgers += await open_all([f"{tag}-b{n}" for n in range(5)], second)
    persistence = Persistence()
    workload = asyncio.gather(
        *(charge(ledger, persistence, sessions=2, samples=5, pause=0.3) for ledger in ledgers)
    )
    await eventually(lambda: sum(len(led.answers) for led in ledgers) >= 10, timeout=30)
    redis.stop()
    async with httpx.AsyncClient(
        base_url=f"{second.http_url}/api/v1", headers={"Authorization": f"Bearer {api_token}"}, timeout=60
    ) as api:
        # A command across processes while Redis is away: a clear error, never a hang.
        away = await api.post(f"/charge-points/{tag}-a0/commands", json={"action": "ClearCache"})
        assert away.status_code in (409, 502, 503, 504), away.text
        assert away.headers["content-type"].startswith("application/json")
        await asyncio.sleep(3)
        redis = RedisServer(tmp_path, port=redis.port).start(timeout=10)
        try:
            await asyncio.wait_for(workload, 120)
            idle = asyncio.create_task(ledgers[0].answer_commands())

            async def command_reaches_the_other_process() -> bool:
                response = await api.post(
                    f"/charge-points/{tag}-a0/commands", json={"action": "ClearCache", "timeout": 5}
                )
                return response.status_code == 201

            # Service resumes by itself once Redis is back.
            await eventually(command_reaches_the_other_process, timeout=60, interval=1)
            assert "ClearCache" in ledgers[0].commands
            idle.cancel()
        finally:
            redis.stop()
    for ledger in ledgers:
        await ledger.close()
    figures = await sync_to_async(stored_against_acknowledged)(ledgers)
    record(
        "redis_restarted",
        fault="Redis stopped for 3 s and restarted while two daphne processes serve",
        command_while_away=away.status_code,
        internal_errors=persistence.internal_errors,
        **figures,
    )
    assert_nothing_lost(figures)
