"""levity_site.server: daphne's command line, on uvloop."""

from __future__ import annotations

import io
import sys

import httpx
import pytest

from bench.processes import ServerProcess, free_port
from levity_site.server import AccessLog
from tests.conftest import PROJECT_DIR


@pytest.fixture
def serve(tmp_path):
    servers: list[ServerProcess] = []

    def start(*module_and_options: str) -> ServerProcess:
        port = free_port()
        argv = [sys.executable, "-m", *module_and_options, "-b", "127.0.0.1", "-p", str(port)]
        server = ServerProcess(
            module_and_options[0], [*argv, "tests.levity_site.event_loop_app:application"],
            port, tmp_path / f"server-{port}.log", cwd=PROJECT_DIR,
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def test_levity_server_runs_the_application_on_uvloop(serve):
    server = serve("levity_site.server")
    assert httpx.get(f"http://127.0.0.1:{server.port}/").text == "uvloop.Loop"


def test_plain_daphne_runs_it_on_asyncios_loop(serve):
    """The comparison that keeps the test above honest: daphne alone does not use uvloop."""
    server = serve("daphne")
    answer = httpx.get(f"http://127.0.0.1:{server.port}/").text
    assert answer == "asyncio.unix_events._UnixSelectorEventLoop"


def test_levity_server_exits_cleanly_on_sigterm(serve):
    server = serve("levity_site.server")
    server.process.terminate()
    assert server.process.wait(10) == 0
    assert "Traceback" not in server.log()


@pytest.mark.django_db(transaction=True)
async def test_sigterm_just_after_a_charge_point_connects_ends_its_session(start_daphne, connect, cp_id):
    server = start_daphne()
    client = await connect(cp_id, server=server)
    await client.boot()

    server.stop()  # within a second of the upgrade, whose HTTP request daphne still lists

    assert server.process.returncode == 0
    log = server.log()
    assert f"{cp_id} disconnected (code 1001)" in log  # the consumer ended the session
    assert "KeyError" not in log


@pytest.mark.django_db(transaction=True)
async def test_access_log_keeps_http_requests_and_leaves_charge_point_sessions_to_levity(
    daphne_server, connect, cp_id
):
    client = await connect(cp_id)
    await client.close()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{daphne_server.http_url}/admin/login/")).status_code == 200
    log = await daphne_server.wait_for_log(f"{cp_id} disconnected (code ")
    log = await daphne_server.wait_for_log('"GET /admin/login/" 200')
    assert f"{cp_id} connected from 127.0.0.1:" in log
    assert f"/ocpp/{cp_id}" not in log  # no WSCONNECTING, WSCONNECT or WSDISCONNECT line


def test_access_log_keeps_refused_websocket_handshakes():
    lines = io.StringIO()
    access_log = AccessLog(lines)
    details = {"client": "127.0.0.1:5000", "path": "/ocpp/CP-1"}
    for action in ("connecting", "connected", "disconnected", "rejected"):
        access_log("websocket", action, details)
    access_log("http", "complete", {**details, "method": "GET", "status": 200, "size": 12})
    assert [line.split('"')[1] for line in lines.getvalue().splitlines()] == [
        "WSREJECT /ocpp/CP-1",
        "GET /ocpp/CP-1",
    ]
