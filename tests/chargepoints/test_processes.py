"""A charge point is not left online by a server process that died without closing it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from chargepoints.models import ChargePoint, ServerProcess
from chargepoints.session import processes, registry
from tests.conftest import eventually

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def server_process(alive_seconds_ago: float) -> ServerProcess:
    return ServerProcess.objects.create(
        id=uuid.uuid4(),
        hostname="cs1",
        pid=4242,
        started_at=NOW - timedelta(hours=1),
        alive_at=NOW - timedelta(seconds=alive_seconds_ago),
    )


def online_charge_point(process: ServerProcess | None) -> ChargePoint:
    return ChargePoint.objects.create(
        charge_point_id=f"CP-{uuid.uuid4().hex[:8]}",
        is_connected=True,
        connected_at=NOW - timedelta(minutes=30),
        server_process=process.id if process else None,
    )


@pytest.mark.django_db
def test_sweep_marks_the_charge_points_of_a_silent_process_offline_as_of_its_last_sign_of_life():
    dead = server_process(alive_seconds_ago=91)  # 30 s interval: dead after 90 s
    charge_point = online_charge_point(dead)

    assert processes.sweep(30, now=NOW) == 1

    charge_point.refresh_from_db()
    assert (charge_point.is_connected, charge_point.disconnected_at, charge_point.server_process) == (
        False,
        dead.alive_at,
        None,
    )
    assert not ServerProcess.objects.filter(pk=dead.pk).exists()


@pytest.mark.django_db
def test_sweep_leaves_the_charge_points_of_a_live_process_and_of_none_online():
    alive = server_process(alive_seconds_ago=89)
    of_live = online_charge_point(alive)
    of_none = online_charge_point(None)  # served outside any server process

    assert processes.sweep(30, now=NOW) == 0

    assert ChargePoint.objects.filter(pk__in=[of_live.pk, of_none.pk], is_connected=True).count() == 2
    assert ServerProcess.objects.filter(pk=alive.pk).exists()


@pytest.mark.django_db
def test_a_process_taken_for_dead_registers_again_and_reclaims_its_charge_points(monkeypatch):
    frozen = server_process(alive_seconds_ago=100)
    charge_point = online_charge_point(frozen)
    processes.sweep(30, now=NOW)
    monkeypatch.setattr(registry, "connected_pks", lambda: [charge_point.pk])

    processes.refresh(frozen.id, now=NOW)

    charge_point.refresh_from_db()
    assert (charge_point.is_connected, charge_point.server_process) == (True, frozen.id)
    assert ServerProcess.objects.get(pk=frozen.id).alive_at == NOW


@pytest.mark.django_db
def test_refresh_of_a_live_process_moves_its_sign_of_life_only(monkeypatch):
    alive = server_process(alive_seconds_ago=10)
    monkeypatch.setattr(registry, "connected_pks", lambda: pytest.fail("nothing to reclaim"))

    processes.refresh(alive.id, now=NOW)

    assert ServerProcess.objects.get(pk=alive.pk).alive_at == NOW


# --- end to end: daphne killed with SIGKILL --------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_charge_points_of_a_killed_server_go_offline_and_those_of_a_live_one_stay(
    start_daphne, connect, cp_id
):
    first = start_daphne(LEVITY_PROCESS_ALIVE_SECONDS="0.2")
    client = await connect(cp_id, server=first)
    await client.boot()
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.is_connected and row.server_process is not None
    first_process = row.server_process

    first.process.kill()  # no disconnect is recorded
    first.process.wait()
    second = start_daphne(LEVITY_PROCESS_ALIVE_SECONDS="0.2")
    survivor = await connect(f"{cp_id}-2", server=second)
    await survivor.boot()

    async def offline() -> bool:
        return not (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected

    await eventually(offline)
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.server_process is None and row.disconnected_at is not None
    assert not await ServerProcess.objects.filter(pk=first_process).aexists()
    live = await ChargePoint.objects.aget(charge_point_id=f"{cp_id}-2")
    since = (await ServerProcess.objects.aget(pk=live.server_process)).alive_at

    async def refreshed_five_times() -> bool:  # the second process's reaper ran meanwhile
        return (await ServerProcess.objects.aget(pk=live.server_process)).alive_at >= since + timedelta(
            seconds=5 * 0.2
        )

    await eventually(refreshed_five_times)
    live = await ChargePoint.objects.aget(charge_point_id=f"{cp_id}-2")
    assert live.is_connected and await ServerProcess.objects.filter(pk=live.server_process).aexists()


@pytest.mark.django_db
def test_admin_lists_server_processes_with_their_charge_points_online(operator_client):
    process = server_process(alive_seconds_ago=5)
    online_charge_point(process)
    online_charge_point(process)

    response = operator_client.get("/admin/chargepoints/serverprocess/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "cs1:4242" in html
    assert '<td class="field-charge_points">2</td>' in html


@pytest.mark.django_db(transaction=True)
async def test_a_server_stopped_with_sigterm_leaves_none_of_its_charge_points_online(
    start_daphne, connect, cp_id
):
    server = start_daphne()
    client = await connect(cp_id, server=server)
    await client.boot()
    process_id = (await ChargePoint.objects.aget(charge_point_id=cp_id)).server_process

    server.stop()  # SIGTERM, as a service manager stops it

    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (row.is_connected, row.server_process) == (False, None)
    assert row.disconnected_at is not None
    assert not await ServerProcess.objects.filter(pk=process_id).aexists()
