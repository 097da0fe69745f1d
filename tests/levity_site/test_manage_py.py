"""manage.py: what its start-up loads, and its runserver (daphne's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.processes import ServerProcess
from tests.conftest import PROJECT_DIR, free_port, server_env
from tests.ocpp_client import OCPPClient

#: What a manage.py command does not need at start-up (each costs every command time):
#: the server (daphne, Twisted), the session layer, OCPP 1.6's schemas, the HTTP clients
#: and Redis. The apps, their admin and their receivers load without them.
NOT_AT_START_UP = (
    "daphne.server",
    "twisted.internet.reactor",
    "autobahn",
    "chargepoints.session",
    "chargepoints.ocpp16",
    "ocpp.v16",
    "jsonschema",
    "aiohttp",
    "httpx",
    "redis",
)


@pytest.mark.once  # imports only; the database is not opened
def test_start_up_loads_neither_the_server_nor_the_session_layer(tmp_path):
    probe = (
        "import json, sys; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({NOT_AT_START_UP!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", probe],
        cwd=PROJECT_DIR,
        env=server_env(tmp_path / "db.sqlite3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


@pytest.mark.once  # which server runserver starts; the database's kind does not matter
async def test_runserver_is_daphnes_serving_charge_points_websockets(
    transactional_db, test_db_path, tmp_path, cp_id
):
    port = free_port()
    server = ServerProcess(
        "runserver",
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        port,
        tmp_path / "runserver.log",
        env=server_env(test_db_path),
        cwd=PROJECT_DIR,
    ).start()
    try:
        client = await OCPPClient.open(f"ws://127.0.0.1:{port}/ocpp/{cp_id}")
        try:
            response = await client.boot()
        finally:
            await client.close()
        assert response.status == "Accepted"
        assert "Starting ASGI/Daphne" in server.log()
    finally:
        server.stop()
