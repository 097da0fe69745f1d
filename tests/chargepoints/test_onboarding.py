"""The onboarding policy for unknown charge points, and accepting a Pending one.

The test fixtures' servers set LEVITY_UNKNOWN_CHARGE_POINTS=accept; the servers
here run with the variable unset (the default, pending) or as each test says.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async

from chargepoints import security
from chargepoints.models import ChargePoint, ChargePointCommand, Connector, StatusNotification
from tests.conftest import PROJECT_DIR, DaphneServer, eventually, server_env
from tests.ocpp_client import OCPPClient, now_iso

from .pki import HASHER_WAIT, PKI, TLSDaphneServer, basic_auth

pytestmark = pytest.mark.django_db(transaction=True)


def default_env(test_db_path, **overrides) -> dict[str, str]:
    env = server_env(test_db_path, **overrides)
    if "LEVITY_UNKNOWN_CHARGE_POINTS" not in overrides:
        del env["LEVITY_UNKNOWN_CHARGE_POINTS"]
    return env


@pytest.fixture(scope="module")
def default_server(django_db_setup, test_db_path, tmp_path_factory):
    """A daphne with the default onboarding policy (the variable unset)."""
    server = DaphneServer(
        default_env(test_db_path), tmp_path_factory.mktemp("logs") / "daphne-default.log"
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def pending_client(default_server, cp_id):
    client = await OCPPClient.open(default_server.ws_url(cp_id))
    yield client
    await client.close()


async def test_unknown_charge_point_is_registered_pending_by_default(pending_client, cp_id):
    assert (await pending_client.boot()).status == "Pending"
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (row.registration_status, row.is_connected, row.charge_point_vendor) == ("Pending", True, "Acme")


async def test_pending_charge_points_other_requests_get_security_error_and_store_nothing(
    default_server, cp_id
):
    async with websockets.connect(default_server.ws_url(cp_id), subprotocols=["ocpp1.6"]) as ws:
        await ws.send(
            json.dumps([2, "b1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}])
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))[2]["status"] == "Pending"
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": now_iso()}
        await ws.send(json.dumps([2, "s1", "StatusNotification", status]))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert answer[:3] == [4, "s1", "SecurityError"]
        assert "Pending" in answer[3]
        await ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))[:3] == [4, "h1", "SecurityError"]
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert not await Connector.objects.filter(charge_point=row).aexists()
    assert not await StatusNotification.objects.filter(charge_point=row).aexists()


async def test_accepting_through_the_api_triggers_a_boot_that_is_accepted(
    default_server, pending_client, api_token, cp_id
):
    assert (await pending_client.boot()).status == "Pending"
    async with httpx.AsyncClient(base_url=f"{default_server.http_url}/api/v1", timeout=30) as api:
        response = await api.post(
            f"/charge-points/{cp_id}/accept", headers={"Authorization": f"Bearer {api_token}"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["changed"], body["trigger"]["action"], body["trigger"]["status"]) == (
        True,
        "TriggerMessage",
        "accepted",
    )
    assert await pending_client.wait_for_command("TriggerMessage") == {
        "requested_message": "BootNotification"
    }
    assert (await pending_client.boot()).status == "Accepted"
    assert (await pending_client.status(1, "Available")) is not None
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.registration_status == "Accepted"
    assert await Connector.objects.filter(charge_point=row, connector_id=1, status="Available").aexists()
    command = await ChargePointCommand.objects.aget(charge_point=row)
    assert command.request == {"requestedMessage": "BootNotification"}


async def test_manage_py_accept_charge_point_accepts_and_triggers_a_boot(
    default_server, pending_client, test_db_path, cp_id
):
    assert (await pending_client.boot()).status == "Pending"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "accept_charge_point",
        cp_id,
        cwd=PROJECT_DIR,
        env=default_env(test_db_path, LEVITY_API_URL=default_server.http_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert f"{cp_id} accepted; TriggerMessage BootNotification: accepted" in out.decode()
    await pending_client.wait_for_command("TriggerMessage")
    assert (await pending_client.boot()).status == "Accepted"


async def test_manage_py_accept_charge_point_of_an_unknown_id_exits_3(default_server, test_db_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "accept_charge_point",
        "CP-NOBODY",
        cwd=PROJECT_DIR,
        env=default_env(test_db_path, LEVITY_API_URL=default_server.http_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 3
    assert "No charge point with id 'CP-NOBODY'" in err.decode()


async def test_refuse_policy_refuses_unknown_ids_and_stores_nothing(start_daphne, cp_id):
    server = start_daphne(LEVITY_UNKNOWN_CHARGE_POINTS="refuse")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url(cp_id), subprotocols=["ocpp1.6"])
    assert refused.value.response.status_code == 403
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()


# --- onboarding under a default security profile of 1 or more (docs/security.md) ---------


async def test_default_profile_1_refuses_unknown_ids_with_401_and_stores_nothing(start_daphne, cp_id):
    server = start_daphne(LEVITY_UNKNOWN_CHARGE_POINTS="pending", LEVITY_DEFAULT_SECURITY_PROFILE="1")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            server.ws_url(cp_id),
            subprotocols=["ocpp1.6"],
            additional_headers=basic_auth(cp_id, "a" * 40),
            open_timeout=HASHER_WAIT,
        )
    assert refused.value.response.status_code == 401
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()
    assert "unknown charge point under security profile 1" in await server.wait_for_log(f"{cp_id}: refused")
    # Provisioned with its password (manage.py set_security_profile), it connects.
    password = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    client = await OCPPClient.open(
        server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password), open_timeout=HASHER_WAIT
    )
    try:
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()


async def test_default_profile_3_registers_an_unknown_id_with_a_valid_certificate_pending(
    django_db_setup, test_db_path, tmp_path, cp_id
):
    pki = PKI(tmp_path)
    server = TLSDaphneServer(
        default_env(
            test_db_path, LEVITY_DEFAULT_SECURITY_PROFILE="3", LEVITY_CLIENT_CA_FILE=str(pki.ca_file)
        ),
        tmp_path / "daphne.log",
        pki.issue("localhost", server=True),
        pki.ca_file,
    ).start()
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                server.wss_url(cp_id), subprotocols=["ocpp1.6"], ssl=pki.client_context()
            )
        assert refused.value.response.status_code == 401
        assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()
        client = await OCPPClient.open(server.wss_url(cp_id), ssl=pki.client_context(pki.issue(cp_id)))
        try:
            assert (await client.boot()).status == "Pending"
        finally:
            await client.close()
        row = await ChargePoint.objects.aget(charge_point_id=cp_id)
        assert (row.registration_status, row.security_profile) == ("Pending", None)
    finally:
        server.stop()


async def test_simulator_waits_pending_until_accepted_then_charges(
    default_server, api_token, test_db_path, cp_id
):
    """The README's quick start: the simulator boots Pending; once accepted it runs its session."""
    from transactions.models import IdTag

    await IdTag.objects.acreate(id_tag="SIMTAG")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "simulate_charge_point",
        cp_id,
        "--url",
        f"ws://127.0.0.1:{default_server.port}/ocpp",
        "--id-tag",
        "SIMTAG",
        "--meter-interval",
        "0.5",
        "--session-duration",
        "1",
        cwd=PROJECT_DIR,
        env=default_env(test_db_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            lambda: ChargePoint.objects.filter(
                charge_point_id=cp_id, registration_status="Pending", last_boot_at__isnull=False
            ).aexists(),
            timeout=60,
        )
        async with httpx.AsyncClient(base_url=f"{default_server.http_url}/api/v1", timeout=30) as api:
            response = await api.post(
                f"/charge-points/{cp_id}/accept", headers={"Authorization": f"Bearer {api_token}"}
            )
        assert response.json()["trigger"]["status"] == "accepted"
        out, err = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    lines = out.decode()
    assert lines.index("BootNotification: Pending") < lines.index("BootNotification: Accepted")
    assert "1 session(s) completed" in lines
