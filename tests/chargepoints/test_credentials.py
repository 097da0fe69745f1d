"""Passwords of charge points: generated once, stored hashed, rotated through
ChangeConfiguration AuthorizationKey; from the admin, the API and manage.py."""

from __future__ import annotations

import asyncio
import sys

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import check_password
from websockets.typing import Subprotocol

from chargepoints import security
from chargepoints.models import ChargePoint, ChargePointCommand, ConfigurationKey
from tests.admin_fixtures import form_fields
from tests.conftest import PROJECT_DIR, server_env
from tests.ocpp_client import OCPPClient

from .pki import HASHER_WAIT, basic_auth

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/chargepoints/chargepoint/"


def make_charge_point(charge_point_id: str, **fields) -> ChargePoint:
    return ChargePoint.objects.create(charge_point_id=charge_point_id, **fields)


async def connect_with(server, cp_id: str, password: str) -> OCPPClient:
    return await OCPPClient.open(
        server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password), open_timeout=HASHER_WAIT
    )


async def refused_status(server, cp_id: str, password: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await websockets.connect(
            server.ws_url(cp_id),
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers=basic_auth(cp_id, password),
            open_timeout=HASHER_WAIT,
        )
    return refusal.value.response.status_code


async def test_rotation_keeps_the_old_password_until_the_new_one_is_used(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    client = await connect_with(daphne_server, cp_id, old)
    try:
        assert (await client.boot()).status == "Accepted"
        response = await api.post(f"/charge-points/{cp_id}/password-rotation", json={})
        assert response.status_code == 201, response.text
        assert response.json()["request"] == {"key": "AuthorizationKey", "value": "********"}
        sent = await client.wait_for_command("ChangeConfiguration")
        new = sent["value"]
        assert sent["key"] == "AuthorizationKey" and len(new) == 40 and new != old
    finally:
        await client.close()
    # Stored: the command with the key masked; nowhere the plaintext.
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    command = await ChargePointCommand.objects.aget(charge_point=row, action="ChangeConfiguration")
    assert (command.status, command.request["value"]) == ("accepted", "********")
    assert (await ConfigurationKey.objects.aget(charge_point=row, key="AuthorizationKey")).value == "********"
    assert check_password(new, row.new_password_hash) and check_password(old, row.password_hash)
    # The old password still works until the charge point has connected with the new one.
    again = await connect_with(daphne_server, cp_id, old)
    assert (await again.boot()).status == "Accepted"
    await again.close()
    rotated = await connect_with(daphne_server, cp_id, new)
    try:
        assert (await rotated.boot()).status == "Accepted"
    finally:
        await rotated.close()
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.new_password_hash == "" and check_password(new, row.password_hash)
    assert await refused_status(daphne_server, cp_id, old) == 401


async def test_rotation_records_its_completion_in_the_command_log(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    client = await connect_with(daphne_server, cp_id, old)
    try:
        response = await api.post(f"/charge-points/{cp_id}/password-rotation", json={})
        assert response.status_code == 201, response.text
        assert response.json()["password_rotation"] == "pending"
        new = (await client.wait_for_command("ChangeConfiguration"))["value"]
    finally:
        await client.close()
    command_id = response.json()["id"]

    async def rotation() -> tuple[str, str | None]:
        command = (await api.get(f"/commands/{command_id}")).json()
        return command["password_rotation"], command["password_rotation_at"]

    # Accepted, and the old password still works: the rotation stays pending.
    again = await connect_with(daphne_server, cp_id, old)
    assert (await again.boot()).status == "Accepted"
    await again.close()
    state, pending_since = await rotation()
    assert state == "pending" and pending_since is not None
    # The charge point connects with the new password: the command records the completion.
    rotated = await connect_with(daphne_server, cp_id, new)
    await rotated.close()
    state, completed_at = await rotation()
    assert state == "completed" and completed_at is not None and completed_at >= pending_since
    await daphne_server.wait_for_log(
        f"{cp_id}: connected with its new password; the old one is no longer valid"
    )
    assert await refused_status(daphne_server, cp_id, old) == 401
    assert (await rotation())[0] == "completed"


async def test_a_second_rotation_supersedes_the_first(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    client = await connect_with(daphne_server, cp_id, old)
    try:
        first = (await api.post(f"/charge-points/{cp_id}/password-rotation", json={})).json()
        second = (await api.post(f"/charge-points/{cp_id}/password-rotation", json={})).json()
    finally:
        await client.close()
    first_password, second_password = (
        p["value"] for name, p in client.received if name == "ChangeConfiguration"
    )
    assert (await api.get(f"/commands/{first['id']}")).json()["password_rotation"] == "superseded"
    assert (await api.get(f"/commands/{second['id']}")).json()["password_rotation"] == "pending"
    assert await refused_status(daphne_server, cp_id, first_password) == 401
    rotated = await connect_with(daphne_server, cp_id, second_password)
    await rotated.close()
    assert (await api.get(f"/commands/{second['id']}")).json()["password_rotation"] == "completed"


async def test_rotation_the_charge_point_rejects_keeps_only_the_old_password(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 2, create=True)
    await sync_to_async(security.set_security_profile)(cp_id, 1)  # plain ws in this test
    old = await sync_to_async(security.set_password)(cp_id)
    client = await connect_with(daphne_server, cp_id, old)
    client.answers["ChangeConfiguration"] = {"status": "Rejected"}
    try:
        response = await api.post(f"/charge-points/{cp_id}/password-rotation", json={})
        assert response.status_code == 201 and response.json()["status"] == "rejected"
        assert response.json()["password_rotation"] == "abandoned"
        new = (await client.wait_for_command("ChangeConfiguration"))["value"]
    finally:
        await client.close()
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.new_password_hash == ""
    assert await refused_status(daphne_server, cp_id, new) == 401


async def test_authorization_key_is_refused_as_a_plain_command(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    client = await connect_with(daphne_server, cp_id, old)
    try:
        response = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "ChangeConfiguration", "payload": {"key": "AuthorizationKey", "value": "0" * 40}},
        )
    finally:
        await client.close()
    assert response.status_code == 422, response.text
    assert "password-rotation" in response.json()["detail"]
    assert not await ChargePointCommand.objects.filter(charge_point__charge_point_id=cp_id).aexists()
    assert not [name for name, _ in client.received if name == "ChangeConfiguration"]


async def test_rotation_of_a_charge_point_without_a_password_profile_is_refused(daphne_server, api, cp_id):
    await sync_to_async(security.set_security_profile)(cp_id, 0, create=True)
    response = await api.post(f"/charge-points/{cp_id}/password-rotation", json={})
    assert response.status_code == 409
    assert response.json()["error"] == "no_password_profile"
    assert not await ChargePointCommand.objects.filter(charge_point__charge_point_id=cp_id).aexists()


async def test_api_sets_the_security_profile_and_shows_the_password_once(daphne_server, api, cp_id):
    await ChargePoint.objects.acreate(charge_point_id=cp_id)
    response = await api.post(f"/charge-points/{cp_id}/security-profile", json={"security_profile": 1})
    assert response.status_code == 200, response.text
    password = response.json()["password"]
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.security_profile == 1 and check_password(password, row.password_hash)
    detail = (await api.get(f"/charge-points/{cp_id}")).json()
    assert detail["security_profile"] == 1 and password not in str(detail)
    client = await connect_with(daphne_server, cp_id, password)
    try:
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()


async def test_api_refuses_a_security_profile_out_of_range(api, cp_id):
    await ChargePoint.objects.acreate(charge_point_id=cp_id)
    response = await api.post(f"/charge-points/{cp_id}/security-profile", json={"security_profile": 4})
    assert response.status_code == 422
    assert (await ChargePoint.objects.aget(charge_point_id=cp_id)).security_profile is None


async def test_api_new_password_replaces_the_old_one(daphne_server, api, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    response = await api.post(f"/charge-points/{cp_id}/password")
    assert response.status_code == 201
    new = response.json()["password"]
    assert await refused_status(daphne_server, cp_id, old) == 401
    client = await connect_with(daphne_server, cp_id, new)
    await client.close()


async def test_api_security_endpoints_need_a_token(daphne_server, cp_id):
    import httpx

    await ChargePoint.objects.acreate(charge_point_id=cp_id)
    async with httpx.AsyncClient(base_url=f"{daphne_server.http_url}/api/v1") as anonymous:
        for path in ("accept", "password", "password-rotation", "security-profile"):
            assert (await anonymous.post(f"/charge-points/{cp_id}/{path}", json={})).status_code in (401, 403)
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.password_hash == ""


async def test_manage_py_set_security_profile_prints_a_password_once(test_db_path, cp_id):
    async def manage(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            *args,
            cwd=PROJECT_DIR,
            env=server_env(test_db_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None  # communicate() waited for the exit
        return process.returncode, out.decode(), err.decode()

    code, out, err = await manage("set_security_profile", cp_id, "2")
    assert code == 0, err
    password = out.strip()
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (row.security_profile, row.registration_status) == (2, "Accepted")
    assert check_password(password, row.password_hash)
    code, out, err = await manage("set_security_profile", cp_id, "3")
    assert (code, out) == (0, "")
    assert (await ChargePoint.objects.aget(charge_point_id=cp_id)).security_profile == 3
    code, out, err = await manage("set_security_profile", cp_id, "7")
    assert code != 0 and "invalid choice" in err


# --- the admin ---------------------------------------------------------------------------------


def test_admin_generate_password_shows_it_once_and_stores_its_hash(operator_client):
    cp = make_charge_point("CP-PW", security_profile=1)
    response = operator_client.post(CHANGELIST, {"action": "generate_password", "_selected_action": [cp.pk]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    start = html.index('<code class="levity-password">') + len('<code class="levity-password">')
    password = html[start : html.index("</code>", start)]
    cp.refresh_from_db()
    assert check_password(password, cp.password_hash)
    page = operator_client.get(f"{CHANGELIST}{cp.pk}/change/").content.decode()
    assert password not in page and "set 20" in page


def test_admin_sets_the_security_profile(operator_client):
    cp = make_charge_point("CP-PROFILE")
    page = operator_client.get(f"{CHANGELIST}{cp.pk}/change/").content.decode()
    fields = form_fields(page, "chargepoint_form")
    fields["security_profile"] = "3"
    response = operator_client.post(f"{CHANGELIST}{cp.pk}/change/", fields)
    assert response.status_code == 302
    cp.refresh_from_db()
    assert cp.security_profile == 3


def test_admin_accepts_pending_charge_points_in_bulk(operator_client):
    pending = [make_charge_point(f"CP-PEND-{n}", registration_status="Pending") for n in range(3)]
    response = operator_client.post(
        CHANGELIST,
        {"action": "accept_registration", "_selected_action": [cp.pk for cp in pending]},
        follow=True,
    )
    assert response.status_code == 200
    assert "3 charge point(s) accepted." in response.content.decode()
    assert set(
        ChargePoint.objects.filter(charge_point_id__startswith="CP-PEND-").values_list(
            "registration_status", flat=True
        )
    ) == {"Accepted"}


async def test_admin_accept_triggers_a_boot_that_is_accepted(browser, daphne_server, cp_id):
    await ChargePoint.objects.acreate(charge_point_id=cp_id, registration_status="Pending")
    client = await OCPPClient.open(daphne_server.ws_url(cp_id))
    try:
        assert (await client.boot()).status == "Pending"
        row = await ChargePoint.objects.aget(charge_point_id=cp_id)
        page = await asyncio.to_thread(browser.get, CHANGELIST)
        fields = form_fields(page.text, "changelist-form")
        fields.update(action="accept_registration", _selected_action=str(row.pk), index="0")
        response = await asyncio.to_thread(browser.post, CHANGELIST, data=fields, follow_redirects=True)
        assert response.status_code == 200
        assert f"{cp_id} accepted TriggerMessage" in response.text
        assert await client.wait_for_command("TriggerMessage") == {"requested_message": "BootNotification"}
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()


async def test_admin_rotation_shows_each_step_on_its_command(browser, daphne_server, cp_id):
    old = await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    client = await connect_with(daphne_server, cp_id, old)
    try:
        page = await asyncio.to_thread(browser.get, CHANGELIST)
        fields = form_fields(page.text, "changelist-form")
        fields.update(action="rotate_password", _selected_action=str(row.pk), index="0")
        response = await asyncio.to_thread(browser.post, CHANGELIST, data=fields, follow_redirects=True)
        assert response.status_code == 200
        new = (await client.wait_for_command("ChangeConfiguration"))["value"]
    finally:
        await client.close()
    command = await ChargePointCommand.objects.aget(charge_point=row, action="ChangeConfiguration")
    url = f"/admin/chargepoints/chargepointcommand/{command.pk}/change/"
    page = await asyncio.to_thread(browser.get, url)
    assert "pending (old and new password valid)" in page.text
    rotated = await connect_with(daphne_server, cp_id, new)
    await rotated.close()
    page = await asyncio.to_thread(browser.get, url)
    assert "completed (connected with the new password; the old one is refused)" in page.text
    assert new not in page.text
