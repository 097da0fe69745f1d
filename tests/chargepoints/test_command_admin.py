"""Remote operations in the admin, through a real browser-like HTTP session against daphne."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import httpx
import pytest
from asgiref.sync import sync_to_async

from chargepoints.models import ApiToken, ChargePoint, ChargePointCommand

from .pki import self_signed_pem

pytestmark = pytest.mark.django_db(transaction=True)


class AdminSession:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    @property
    def csrf(self) -> str:
        return self.client.cookies["csrftoken"]

    async def get(self, url: str) -> httpx.Response:
        return await self.client.get(url)

    async def post(self, url: str, data: dict | list) -> httpx.Response:
        items = list(data.items()) if isinstance(data, dict) else list(data)
        return await self.client.post(
            url,
            content=urlencode([*items, ("csrfmiddlewaretoken", self.csrf)]),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def messages_after(self, response: httpx.Response) -> list[tuple[str, str]]:
        assert response.status_code == 302, response.text[:500]
        page = await self.get(response.headers["Location"])
        listed = re.search(r'<ul class="messagelist">(.*?)</ul>', page.text, re.S)
        assert listed is not None, page.text[:500]
        return [
            (level, html.unescape(text))
            for level, text in re.findall(r'<li class="(\w+)">(.*?)</li>', listed.group(1), re.S)
        ]


async def login(server, username: str, password: str) -> AdminSession:
    client = httpx.AsyncClient(base_url=server.http_url, timeout=30)
    await client.get("/admin/login/")
    session = AdminSession(client)
    response = await session.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"}
    )
    assert response.status_code == 302, "login failed"
    return session


@pytest.fixture
async def admin(daphne_server, admin_user):
    session = await login(daphne_server, "admin", "password")
    yield session
    await session.client.aclose()


async def charge_point_pk(cp_id: str) -> int:
    return (await ChargePoint.objects.aget(charge_point_id=cp_id)).pk


COMMAND_URL = "/admin/chargepoints/chargepoint/command/{}/"


async def test_change_page_offers_the_remote_operations(admin, connect, cp_id):
    await connect(cp_id)
    page = await admin.get(f"/admin/chargepoints/chargepoint/{await charge_point_pk(cp_id)}/change/")
    assert page.status_code == 200
    for operation in (
        "remote-start",
        "remote-stop",
        "reset",
        "unlock",
        "change-availability",
        "get-configuration",
        "change-configuration",
        "trigger-message",
        "clear-cache",
        "certificate-signed",
        "install-certificate",
        "get-installed-certificate-ids",
        "delete-certificate",
        "extended-trigger-message",
        "get-log",
        "signed-update-firmware",
    ):
        assert f'action="{COMMAND_URL.format(operation)}"' in page.text


async def test_reset_from_the_change_page_reaches_the_charge_point_and_shows_its_answer(
    admin, connect, cp_id
):
    client = await connect(cp_id)
    page = f"/admin/chargepoints/chargepoint/{await charge_point_pk(cp_id)}/change/"
    response = await admin.post(
        COMMAND_URL.format("reset"), {"charge_point": cp_id, "type": "Hard", "next": page}
    )
    assert response.headers["Location"] == page
    assert await admin.messages_after(response) == [
        ("success", f'{cp_id} accepted Reset: {{"status": "Accepted"}}')
    ]
    assert await client.wait_for_command("Reset") == {"type": "Hard"}
    stored = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp_id)
    assert stored.requested_by == "user:admin"


async def test_remote_start_form_builds_the_payload(admin, connect, cp_id):
    client = await connect(cp_id)
    response = await admin.post(
        COMMAND_URL.format("remote-start"),
        {"charge_point": cp_id, "id_tag": "RFID1", "connector_id": "2", "next": "/admin/"},
    )
    assert response.status_code == 302
    assert await client.wait_for_command("RemoteStartTransaction") == {"id_tag": "RFID1", "connector_id": 2}


async def test_rejected_answer_is_shown_as_a_warning(admin, connect, cp_id):
    client = await connect(cp_id)
    client.answers["ChangeAvailability"] = {"status": "Rejected"}
    response = await admin.post(
        COMMAND_URL.format("change-availability"),
        {"charge_point": cp_id, "connector_id": "0", "type": "Inoperative", "next": "/admin/"},
    )
    assert await admin.messages_after(response) == [
        ("warning", f"{cp_id} rejected ChangeAvailability: Rejected")
    ]


async def test_offline_charge_point_is_reported_as_an_error(admin, connect, cp_id):
    await (await connect(cp_id)).close()
    response = await admin.post(COMMAND_URL.format("clear-cache"), {"charge_point": cp_id, "next": "/admin/"})
    assert await admin.messages_after(response) == [
        ("error", f"{cp_id}: ClearCache offline: {cp_id} is not connected")
    ]


async def test_invalid_form_is_not_sent(admin, connect, cp_id):
    client = await connect(cp_id)
    response = await admin.post(
        COMMAND_URL.format("unlock"), {"charge_point": cp_id, "connector_id": "0", "next": "/admin/"}
    )
    [(level, text)] = await admin.messages_after(response)
    assert level == "error" and text.startswith("Unlock connector not sent: connector_id:")
    assert client.received == []


async def test_get_configuration_keys_are_stored_and_shown_on_the_change_page(admin, connect, cp_id):
    await connect(cp_id)
    page = f"/admin/chargepoints/chargepoint/{await charge_point_pk(cp_id)}/change/"
    response = await admin.post(
        COMMAND_URL.format("get-configuration"), {"charge_point": cp_id, "key": "", "next": page}
    )
    assert await admin.messages_after(response) == [
        ("success", f"{cp_id} accepted GetConfiguration: 3 key(s) stored")
    ]
    text = (await admin.get(page)).text
    assert "MeterValueSampleInterval" in text and "NumberOfConnectors" in text


async def test_list_action_sends_the_command_to_every_selected_charge_point(admin, connect, cp_id):
    clients = {f"{cp_id}-{n}": await connect(f"{cp_id}-{n}") for n in range(2)}
    pks = [await charge_point_pk(name) for name in clients]
    form_page = await admin.post(
        "/admin/chargepoints/chargepoint/",
        [("action", "command_trigger_message"), *[("_selected_action", str(pk)) for pk in pks]],
    )
    assert form_page.status_code == 200
    assert all(name in form_page.text for name in clients)
    response = await admin.post(
        COMMAND_URL.format("trigger-message"),
        [
            *[("charge_point", name) for name in clients],
            ("requested_message", "Heartbeat"),
            ("next", "/admin/chargepoints/chargepoint/"),
        ],
    )
    assert sorted(await admin.messages_after(response)) == [
        ("success", f'{name} accepted TriggerMessage: {{"status": "Accepted"}}') for name in sorted(clients)
    ]
    for client in clients.values():
        assert await client.wait_for_command("TriggerMessage") == {"requested_message": "Heartbeat"}


async def test_staff_without_the_send_permission_cannot_send(
    daphne_server, connect, cp_id, django_user_model
):
    await sync_to_async(django_user_model.objects.create_user)("viewer", password="pw12345!", is_staff=True)
    client = await connect(cp_id)
    session = await login(daphne_server, "viewer", "pw12345!")
    response = await session.post(COMMAND_URL.format("reset"), {"charge_point": cp_id, "type": "Soft"})
    assert response.status_code == 403
    assert client.received == []
    await session.client.aclose()


async def test_install_certificate_from_the_change_page_sends_the_pem(admin, connect, cp_id):
    client = await connect(cp_id)
    pem = self_signed_pem()
    response = await admin.post(
        COMMAND_URL.format("install-certificate"),
        {
            "charge_point": cp_id,
            "certificate_type": "CentralSystemRootCertificate",
            "certificate": pem,
            "next": "/admin/",
        },
    )
    assert await admin.messages_after(response) == [
        ("success", f'{cp_id} accepted InstallCertificate: {{"status": "Accepted"}}')
    ]
    received = await client.wait_for_command("InstallCertificate")
    assert received == {"certificate_type": "CentralSystemRootCertificate", "certificate": pem}


async def test_get_log_form_builds_the_nested_payload(admin, connect, cp_id):
    client = await connect(cp_id)
    response = await admin.post(
        COMMAND_URL.format("get-log"),
        {
            "charge_point": cp_id,
            "log_type": "SecurityLog",
            "request_id": "8",
            "remote_location": "https://logs.example.com/up",
            "oldest_timestamp": "2025-01-01 00:00:00",
            "latest_timestamp": "",
            "retries": "",
            "retry_interval": "",
            "next": "/admin/",
        },
    )
    [(level, _)] = await admin.messages_after(response)
    assert level == "success"
    assert await client.wait_for_command("GetLog") == {
        "log_type": "SecurityLog",
        "request_id": 8,
        "log": {
            "remote_location": "https://logs.example.com/up",
            "oldest_timestamp": "2025-01-01T00:00:00.000Z",
        },
    }


async def test_install_certificate_that_is_not_pem_is_not_sent(admin, connect, cp_id):
    client = await connect(cp_id)
    response = await admin.post(
        COMMAND_URL.format("install-certificate"),
        {
            "charge_point": cp_id,
            "certificate_type": "CentralSystemRootCertificate",
            "certificate": "hello",
            "next": "/admin/",
        },
    )
    [(level, text)] = await admin.messages_after(response)
    assert level == "error" and "Paste PEM certificate(s)" in text
    assert not await ChargePointCommand.objects.filter(charge_point__charge_point_id=cp_id).aexists()
    assert client.received == []


async def test_commands_are_listed_read_only(admin, connect, cp_id):
    await connect(cp_id)
    await admin.post(COMMAND_URL.format("clear-cache"), {"charge_point": cp_id, "next": "/admin/"})
    listing = await admin.get(f"/admin/chargepoints/chargepointcommand/?q={cp_id}")
    assert listing.status_code == 200 and "ClearCache" in listing.text
    assert (await admin.get("/admin/chargepoints/chargepointcommand/add/")).status_code == 403


async def test_api_token_plaintext_is_shown_once_and_works(admin, daphne_server):
    created = await admin.post(
        "/admin/chargepoints/apitoken/add/", {"name": "billing", "scope": "read", "expires_at": ""}
    )
    assert created.status_code == 200
    plaintext = re.search(r'<code id="api-token"[^>]*>(lvt_[^<]+)</code>', created.text).group(1)
    token = await ApiToken.objects.aget(name="billing")
    assert token.token_hash == ApiToken.hash(plaintext)
    detail = await admin.get(f"/admin/chargepoints/apitoken/{token.pk}/change/")
    assert plaintext not in detail.text
    async with httpx.AsyncClient(base_url=daphne_server.http_url) as api:
        headers = {"Authorization": f"Bearer {plaintext}"}
        assert (await api.get("/api/v1/charge-points", headers=headers)).status_code == 200
        revoked = await admin.post(
            "/admin/chargepoints/apitoken/", [("action", "revoke"), ("_selected_action", str(token.pk))]
        )
        assert revoked.status_code == 302
        assert (await api.get("/api/v1/charge-points", headers=headers)).status_code == 401
