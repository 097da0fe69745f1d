"""``python -m levity_site.server --workers N``: N server processes on one port.

Real processes: the supervisor, its daphne workers on SO_REUSEPORT sockets of one
address, a real redis-server for the channel layer, and real OCPP clients.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from bench.processes import RedisServer, ServerProcess, free_port
from chargepoints.models import ChargePoint, ServerProcess as ServerProcessRow
from tests.conftest import PROJECT_DIR, eventually, server_env
from tests.ocpp_client import OCPPClient
from tests.services import program

pytestmark = pytest.mark.django_db(transaction=True)

CHARGE_POINTS = 12  # spread at random over 2 workers: all on one is a 1 in 2,048 chance


@pytest.fixture
def redis_url(tmp_path):
    program("redis-server", "redis-server")
    redis = RedisServer(tmp_path).start(timeout=10)
    yield redis.url
    redis.stop()


class Workers(ServerProcess):
    def __init__(self, env: dict[str, str], log_path, workers: int = 2):
        port = free_port()
        argv = [
            sys.executable, "-m", "levity_site.server", "--workers", str(workers),
            "-b", "127.0.0.1", "-p", str(port), "levity_site.asgi:application",
        ]  # fmt: skip
        super().__init__("levity workers", argv, port, log_path, env=env, cwd=PROJECT_DIR, stop_timeout=40)

    def worker_pids(self) -> set[int]:
        assert self.process is not None  # started
        return {child.pid for child in psutil.Process(self.process.pid).children()}

    def ws_url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charge_point_id}"


async def registered_workers(workers: Workers, expected: int = 2, timeout: float = 60) -> set[int]:
    """The workers' pids, once there are ``expected`` workers and each has its ServerProcess row.

    (Other servers of the test session may have rows too: only the workers' count.)
    """

    async def registered() -> set[int]:
        children = workers.worker_pids()
        rows = {row.pid async for row in ServerProcessRow.objects.filter(pid__in=children)}
        assert len(children) == expected and rows == children, f"{len(rows)} of {expected} workers registered"
        return children

    return await eventually(registered, timeout=timeout, interval=0.2)


@pytest.fixture
def workers(django_db_setup, test_db_path, redis_url, tmp_path):
    env = server_env(test_db_path, REDIS_URL=redis_url, LEVITY_PROCESS_ALIVE_SECONDS="1")
    server = Workers(env, tmp_path / "workers.log").start(timeout=60)
    yield server
    server.stop()


async def test_two_workers_share_one_port_and_commands_reach_every_charge_point(workers, cp_id, api_token):
    pids = await registered_workers(workers)
    clients = []
    try:
        for n in range(CHARGE_POINTS):
            client = await OCPPClient.open(workers.ws_url(f"{cp_id}-{n}"))
            clients.append(client)
            await client.boot()
        rows = [row async for row in ChargePoint.objects.filter(charge_point_id__startswith=cp_id)]
        assert len(rows) == CHARGE_POINTS and all(row.is_connected for row in rows)
        holders = {row.server_process for row in rows}
        process_pids = {p.id: p.pid async for p in ServerProcessRow.objects.filter(pid__in=pids)}
        assert {process_pids[h] for h in holders} == pids  # both workers got some

        # Each command goes in through whichever worker takes the request.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{workers.port}/api/v1",
            headers={"Authorization": f"Bearer {api_token}"},
            timeout=30,
        ) as api:
            for n, client in enumerate(clients):
                response = await api.post(
                    f"/charge-points/{cp_id}-{n}/commands",
                    json={"action": "Reset", "payload": {"type": "Soft"}},
                )
                assert response.status_code == 201, response.text
                assert response.json()["response"] == {"status": "Accepted"}
                assert await client.wait_for_command("Reset") == {"type": "Soft"}
    finally:
        for client in clients:
            await client.close()


async def test_a_worker_that_dies_is_started_again(workers):
    first, _ = sorted(await registered_workers(workers))
    psutil.Process(first).kill()

    def replaced() -> bool:
        pids = workers.worker_pids()
        assert len(pids) == 2 and first not in pids, f"workers now: {pids}"
        return True

    await eventually(replaced, timeout=60, interval=0.2)
    assert "exited with -9; starting it again" in workers.log()


async def test_sigterm_stops_every_worker_and_their_charge_points_go_offline(workers, cp_id):
    worker_pids = await registered_workers(workers)
    client = await OCPPClient.open(workers.ws_url(cp_id))
    await client.boot()
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(40) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in worker_pids)
    assert not (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected
    await client.close()


def run_workers(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "levity_site.server", "--workers", "2", "-p", str(free_port()),
         "levity_site.asgi:application"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip


@pytest.mark.once  # refused before a worker starts: no database
def test_workers_without_redis_refuse_to_start_with_one_line(test_db_path):
    result = run_workers(server_env(test_db_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Levity configuration error: --workers 2 needs REDIS_URL: without a shared channel "
        "layer a command reaches only the charge points of the process that takes the request"
    )


@pytest.mark.once  # settings only
def test_a_malformed_levity_workers_stops_start_up(test_db_path):
    result = run_workers(server_env(test_db_path, LEVITY_WORKERS="0"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Levity configuration error: LEVITY_WORKERS='0' must be at least 1."
    )


@pytest.mark.once  # its workers fail as their apps load, before the database
def test_workers_that_cannot_start_stop_the_supervisor_with_a_line_saying_so(test_db_path):
    env = server_env(test_db_path, REDIS_URL="redis://127.0.0.1:1/0", LEVITY_EXTRA_APPS="no_such_app")
    result = run_workers(env)
    assert result.returncode == 1
    assert "of its start; stopping all workers" in result.stderr.strip().splitlines()[-1]
