"""``manage.py status``: processes, charge points connected to each, heartbeat ages."""

from __future__ import annotations

import io
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from tests.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("status", *args, stdout=out)
    return out.getvalue()


async def heartbeat_recorded(charge_point_id: str, timeout: float = 15) -> None:
    await eventually(
        lambda: ChargePoint.objects.filter(
            charge_point_id=charge_point_id, last_heartbeat_at__isnull=False
        ).aexists(),
        timeout=timeout,
        what=f"a heartbeat of {charge_point_id} written",
    )


async def test_status_counts_each_processes_charge_points_and_their_heartbeat_age(
    start_daphne, connect, cp_id
):
    first, second = start_daphne(), start_daphne()
    for n, server in [(1, first), (2, first), (3, second)]:
        client = await connect(f"{cp_id}-{n}", server=server)
        await client.boot()
        await client.call(call.Heartbeat())
        await heartbeat_recorded(f"{cp_id}-{n}")

    report = json.loads(await sync_to_async(status)("--json", "--charge-points"))

    by_pid = {p["pid"]: p for p in report["processes"]}
    assert by_pid[first.process.pid]["charge_points"] == 2
    assert by_pid[second.process.pid]["charge_points"] == 1
    for process in (by_pid[first.process.pid], by_pid[second.process.pid]):
        assert 0 <= process["oldest_heartbeat_seconds_ago"] < 60
        assert 0 <= process["alive_seconds_ago"] < 60
    assert report["charge_points_connected"] == 3
    assert report["charge_points_without_process"] == 0
    listed = {cp["charge_point_id"]: cp for cp in report["charge_points"]}
    assert set(listed) == {f"{cp_id}-1", f"{cp_id}-2", f"{cp_id}-3"}
    assert listed[f"{cp_id}-3"]["process"] == by_pid[second.process.pid]["id"]
    assert 0 <= listed[f"{cp_id}-3"]["last_heartbeat_seconds_ago"] < 60


async def test_status_table_names_each_process_and_its_charge_point_count(start_daphne, connect, cp_id):
    server = start_daphne()
    client = await connect(cp_id, server=server)
    await client.boot()

    text = await sync_to_async(status)("--charge-points")

    [line] = [line for line in text.splitlines() if f":{server.process.pid} " in line]
    assert "charge points 1" in line and "oldest heartbeat never" in line
    assert "Charge points connected: 1" in text
    assert any(line.strip().startswith(cp_id) and "heartbeat never" in line for line in text.splitlines())


@pytest.mark.once  # its own unreachable database, not the test database
def test_status_with_an_unreachable_database_ends_with_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR, free_port, server_env

    env = server_env(tmp_path / "db.sqlite3", DATABASE_URL=f"postgres://x@127.0.0.1:{free_port()}/x")
    env["DATABASE_POOL_TIMEOUT"] = "1"
    result = subprocess.run(
        [sys.executable, "manage.py", "status"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    # (psycopg's pool logs each failed attempt before it.)
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: Cannot read the database:")
