"""API authentication: Bearer tokens stored as SHA-256, 401 otherwise."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chargepoints.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

issue = sync_to_async(ApiToken.issue)


@pytest.fixture
async def anonymous(daphne_server):
    async with httpx.AsyncClient(base_url=f"{daphne_server.http_url}/api/v1", timeout=10) as client:
        yield client


def test_only_the_sha256_of_a_token_is_stored():
    token, plaintext = ApiToken.issue("ci")
    token.refresh_from_db()
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in {str(v) for v in ApiToken.objects.values().get(pk=token.pk).values()}
    assert plaintext.startswith("lvt_") and token.prefix == plaintext[:12]


@pytest.mark.parametrize("path", ["/charge-points", "/transactions", "/charge-points/CP1/commands"])
async def test_request_without_token_is_401_with_bearer_challenge(anonymous, path):
    if path.endswith("commands"):
        response = await anonymous.post(path, json={"action": "ClearCache"})
    else:
        response = await anonymous.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="levity"'
    assert response.json()["error"] == "not_authenticated"


async def test_unknown_token_is_401(anonymous):
    response = await anonymous.get("/charge-points", headers={"Authorization": "Bearer lvt_nope"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "authentication_failed",
        "detail": "Invalid, expired or revoked token.",
    }


async def test_revoked_token_is_401(anonymous):
    token, plaintext = await issue("revoked")
    await ApiToken.objects.filter(pk=token.pk).aupdate(revoked_at=timezone.now())
    response = await anonymous.get("/charge-points", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 401


async def test_expired_token_is_401(anonymous):
    _, plaintext = await issue("old", expires_at=timezone.now() - timedelta(seconds=1))
    response = await anonymous.get("/charge-points", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 401


async def test_valid_token_is_accepted_and_its_last_use_recorded(anonymous):
    token, plaintext = await issue("ok")
    response = await anonymous.get("/charge-points", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200
    await token.arefresh_from_db()
    assert token.last_used_at is not None


# --- scopes -------------------------------------------------------------------------


async def test_a_new_token_is_read_only_by_default():
    token, _ = await issue("reader")
    assert token.scope == "read"


async def test_a_read_only_token_reads_but_cannot_send_commands(anonymous, connect, cp_id):
    from chargepoints.models import ChargePointCommand

    client = await connect(cp_id)
    await client.boot()
    _, plaintext = await issue("reader", scope="read")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert (await anonymous.get("/charge-points", headers=headers)).status_code == 200
    response = await anonymous.post(
        f"/charge-points/{cp_id}/commands", json={"action": "ClearCache"}, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert "'commands' scope" in response.json()["detail"]
    assert not await ChargePointCommand.objects.aexists()
    assert client.received == []


@pytest.mark.parametrize("path", ["accept", "password", "password-rotation"])
async def test_a_read_only_token_cannot_manage_charge_point_credentials(anonymous, connect, cp_id, path):
    from chargepoints.models import ChargePoint

    client = await connect(cp_id)
    await client.boot()
    before = await ChargePoint.objects.values("password_hash", "registration_status").aget(
        charge_point_id=cp_id
    )
    _, plaintext = await issue("reader", scope="read")
    response = await anonymous.post(
        f"/charge-points/{cp_id}/{path}", json={}, headers={"Authorization": f"Bearer {plaintext}"}
    )
    assert response.status_code == 403
    assert "'commands' scope" in response.json()["detail"]
    assert "password" not in response.json()
    after = await ChargePoint.objects.values("password_hash", "registration_status").aget(
        charge_point_id=cp_id
    )
    assert after == before


async def test_a_commands_token_sends_commands(anonymous, connect, cp_id):
    client = await connect(cp_id)
    await client.boot()
    _, plaintext = await issue("operator-tool", scope="commands")
    response = await anonymous.post(
        f"/charge-points/{cp_id}/commands",
        json={"action": "ClearCache"},
        headers={"Authorization": f"Bearer {plaintext}"},
    )
    assert response.status_code in (200, 201), response.text
    await client.wait_for_command("ClearCache")


async def test_a_staff_user_without_the_command_permission_cannot_send_commands(
    daphne_server, django_user_model, connect, cp_id
):
    from asgiref.sync import sync_to_async
    from django.contrib.auth.hashers import make_password

    from chargepoints.models import ChargePointCommand
    from tests.admin_fixtures import form_fields

    client = await connect(cp_id)
    await client.boot()
    await sync_to_async(django_user_model.objects.create)(
        username="viewer", password=make_password("viewer-pw-123"), is_staff=True
    )
    async with httpx.AsyncClient(base_url=daphne_server.http_url, timeout=20) as browser:
        page = await browser.get("/admin/login/")
        fields = form_fields(page.text, "login-form")
        fields.update(username="viewer", password="viewer-pw-123")
        assert (await browser.post("/admin/login/?next=/admin/", data=fields)).status_code == 302
        assert (await browser.get("/api/v1/charge-points")).status_code == 200
        response = await browser.post(
            f"/api/v1/charge-points/{cp_id}/commands",
            json={"action": "ClearCache"},
            headers={"X-CSRFToken": browser.cookies["csrftoken"]},
        )
    assert response.status_code == 403
    assert "'add charge point command' permission" in response.json()["detail"]
    assert not await ChargePointCommand.objects.aexists()
