"""The charge point admin: served by daphne with its CSS, and what an operator sees and edits."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import httpx
import pytest

from chargepoints.models import (
    CertificateSigningRequest,
    ChargePoint,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    LogStatusNotification,
    SecurityEvent,
    SignedFirmwareStatusNotification,
    StatusNotification,
)
from tests.admin_fixtures import form_fields
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/chargepoints/chargepoint/"


# --- served by daphne (no DEBUG) ---------------------------------------------------------


def test_admin_page_and_its_css_and_js_are_served_by_daphne_without_debug(browser):
    page = browser.get(CHANGELIST)
    assert page.status_code == 200
    assert "Select charge point to change" in page.text
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+\.css)"', page.text)
    scripts = re.findall(r'<script src="([^"]+\.js)"', page.text)
    assert "/static/admin/css/base.css" in stylesheets
    for url in stylesheets:
        css = browser.get(url)
        assert css.status_code == 200, url
        assert css.headers["content-type"].startswith("text/css")
        assert len(css.content) > 100
    assert scripts
    for url in scripts:
        js = browser.get(url)
        assert js.status_code == 200, url
        assert "javascript" in js.headers["content-type"]


def test_admin_requires_login(daphne_server):
    response = httpx.get(f"{daphne_server.http_url}{CHANGELIST}")
    assert response.status_code == 302
    assert response.headers["location"].startswith("/admin/login/")


async def test_registration_status_set_in_the_admin_is_what_boot_notification_answers(
    browser, daphne_server, cp_id
):
    cp = await ChargePoint.objects.acreate(charge_point_id=cp_id, charge_point_vendor="Acme")
    url = f"{CHANGELIST}{cp.pk}/change/"
    page = browser.get(url)
    fields = form_fields(page.text, "chargepoint_form")
    assert fields["registration_status"] == "Accepted"
    assert "charge_point_vendor" not in fields  # protocol-derived: read-only
    fields.update(registration_status="Pending", _save="Save")
    saved = browser.post(url, data=fields)
    assert saved.status_code == 302, saved.text[:2000]
    assert (await ChargePoint.objects.aget(pk=cp.pk)).registration_status == "Pending"

    client = await OCPPClient.open(daphne_server.ws_url(cp_id))
    try:
        assert (await client.boot()).status == "Pending"
    finally:
        await client.close()


# --- charge point list -------------------------------------------------------------------------


def make_charge_point(charge_point_id: str, **fields) -> ChargePoint:
    return ChargePoint.objects.create(charge_point_id=charge_point_id, **fields)


def listed_ids(response) -> list[str]:
    return re.findall(r'<th class="field-charge_point_id"><a href="[^"]+">([^<]+)</a>', response.text)


def test_charge_point_list_shows_online_state_status_vendor_and_connectors(operator_client):
    cp = make_charge_point(
        "CP-LIST", is_connected=True, charge_point_vendor="Acme", charge_point_model="AC-22"
    )
    Connector.objects.create(charge_point=cp, connector_id=1, status="Charging")
    Connector.objects.create(charge_point=cp, connector_id=2, status="Faulted", error_code="GroundFailure")
    response = operator_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert listed_ids(response) == ["CP-LIST"]
    assert 'alt="True"' in html  # the online icon
    assert "1:&nbsp;Charging" in html and "2:&nbsp;Faulted" in html
    assert 'title="GroundFailure"' in html
    assert "Acme" in html and "AC-22" in html


def test_charge_point_list_filters_online_and_offline(operator_client):
    make_charge_point("CP-ON", is_connected=True)
    make_charge_point("CP-OFF", is_connected=False)
    assert listed_ids(operator_client.get(CHANGELIST, {"online": "yes"})) == ["CP-ON"]
    assert listed_ids(operator_client.get(CHANGELIST, {"online": "no"})) == ["CP-OFF"]


def test_charge_point_list_filters_by_connector_status(operator_client):
    faulted = make_charge_point("CP-FAULT")
    fine = make_charge_point("CP-FINE")
    Connector.objects.create(charge_point=faulted, connector_id=1, status="Available")
    Connector.objects.create(charge_point=faulted, connector_id=2, status="Faulted")
    Connector.objects.create(charge_point=fine, connector_id=1, status="Available")
    response = operator_client.get(CHANGELIST, {"connector_status": "Faulted"})
    assert listed_ids(response) == ["CP-FAULT"]
    response = operator_client.get(CHANGELIST, {"connector_status": "Available"})
    assert listed_ids(response) == ["CP-FAULT", "CP-FINE"]


def test_charge_point_list_filters_by_vendor_and_registration_status(operator_client):
    make_charge_point("CP-A", charge_point_vendor="Acme")
    make_charge_point("CP-B", charge_point_vendor="Bolt", registration_status="Pending")
    response = operator_client.get(CHANGELIST, {"charge_point_vendor": "Bolt"})
    assert listed_ids(response) == ["CP-B"]
    response = operator_client.get(CHANGELIST, {"registration_status__exact": "Accepted"})
    assert listed_ids(response) == ["CP-A"]


def test_charge_point_search_finds_serial_numbers(operator_client):
    make_charge_point("CP-S1", charge_box_serial_number="BOX-991")
    make_charge_point("CP-S2")
    assert listed_ids(operator_client.get(CHANGELIST, {"q": "BOX-991"})) == ["CP-S1"]


def test_registration_actions_set_what_boot_notification_answers(operator_client):
    cp = make_charge_point("CP-ACT")
    response = operator_client.post(
        CHANGELIST, {"action": "reject_registration", "_selected_action": [cp.pk]}, follow=True
    )
    assert response.status_code == 200
    cp.refresh_from_db()
    assert cp.registration_status == "Rejected"


# --- charge point page ---------------------------------------------------------------------------


def test_charge_point_page_shows_connectors_and_recent_status_history(operator_client):
    cp = make_charge_point("CP-PAGE", charge_point_vendor="Acme")
    Connector.objects.create(charge_point=cp, connector_id=1, status="Charging")
    for n in range(25):
        StatusNotification.objects.create(
            charge_point=cp,
            connector_id=1,
            status="Available",
            error_code="NoError",
            info=f"note-{n:02d}",
            received_at=datetime(2025, 3, 1, 10, n, tzinfo=timezone.utc),
        )
    response = operator_client.get(f"{CHANGELIST}{cp.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Recent status notifications (latest 20)" in html
    assert "note-24" in html and "note-05" in html
    assert "note-04" not in html  # older than the latest 20
    assert re.search(r'<td class="field-status">\s*<p>Charging</p>', html)
    assert "status history" in html and "0 transactions (0 active)" in html


def test_charge_point_page_shows_its_recent_security_events(operator_client):
    cp = make_charge_point("CP-SEC")
    for n in range(22):
        SecurityEvent.objects.create(
            charge_point=cp,
            type="InvalidFirmwareSignature",
            timestamp=datetime(2025, 3, 1, 9, n, tzinfo=timezone.utc),
            tech_info=f"event-{n:02d}",
            received_at=datetime(2025, 3, 1, 10, n, tzinfo=timezone.utc),
        )
    html = operator_client.get(f"{CHANGELIST}{cp.pk}/change/").content.decode()
    assert "Recent security events (latest 20)" in html
    assert "event-21" in html and "event-02" in html
    assert "event-01" not in html  # older than the latest 20
    assert "security events" in html and "certificate requests" in html


def test_security_events_are_listed_filterable_by_type_and_read_only(operator_client):
    cp = make_charge_point("CP-SECLIST")
    at = datetime(2025, 3, 1, tzinfo=timezone.utc)
    event = SecurityEvent.objects.create(
        charge_point=cp, type="TamperDetectionActivated", timestamp=at, tech_info="lid", received_at=at
    )
    SecurityEvent.objects.create(charge_point=cp, type="StartupOfTheDevice", timestamp=at, received_at=at)
    base = "/admin/chargepoints/securityevent/"
    listing = operator_client.get(base, {"type": "TamperDetectionActivated"}).content.decode()
    rows = listing.split("<tbody>")[1].split("</tbody>")[0]
    assert "TamperDetectionActivated" in rows and "StartupOfTheDevice" not in rows
    assert operator_client.get(f"{base}add/").status_code == 403
    assert 'name="_save"' not in operator_client.get(f"{base}{event.pk}/change/").content.decode()


def test_protocol_fields_cannot_be_changed_in_the_admin(operator_client):
    cp = make_charge_point("CP-RO", charge_point_vendor="Acme", firmware_version="1.0")
    page = operator_client.get(f"{CHANGELIST}{cp.pk}/change/").content.decode()
    fields = form_fields(page, "chargepoint_form")
    fields.update(charge_point_vendor="Hacked", firmware_version="9.9", charge_point_id="NEW")
    fields["registration_status"] = "Rejected"
    response = operator_client.post(f"{CHANGELIST}{cp.pk}/change/", fields)
    assert response.status_code == 302
    cp.refresh_from_db()
    assert (cp.charge_point_id, cp.charge_point_vendor, cp.firmware_version) == (
        "CP-RO",
        "Acme",
        "1.0",
    )
    assert cp.registration_status == "Rejected"


def test_operator_can_register_a_charge_point_before_it_connects(operator_client):
    response = operator_client.post(
        f"{CHANGELIST}add/", {"charge_point_id": "CP-NEW-1", "registration_status": "Accepted"}
    )
    assert response.status_code == 302
    assert ChargePoint.objects.filter(charge_point_id="CP-NEW-1").exists()


def test_charge_point_id_that_could_never_connect_is_refused(operator_client):
    response = operator_client.post(
        f"{CHANGELIST}add/", {"charge_point_id": "CP 1/2", "registration_status": "Accepted"}
    )
    assert response.status_code == 200
    assert "Use 1 to 48 characters" in response.content.decode()
    assert not ChargePoint.objects.exists()


# --- logs: read-only ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "row"),
    [
        (DataTransfer, {"vendor_id": "com.acme", "message_id": "Echo", "status": "Accepted"}),
        (DiagnosticsStatusNotification, {"status": "Uploaded"}),
        (FirmwareStatusNotification, {"status": "Installed"}),
        (
            StatusNotification,
            {"connector_id": 1, "status": "Faulted", "error_code": "GroundFailure"},
        ),
        (SignedFirmwareStatusNotification, {"status": "InvalidSignature", "request_id": 4}),
        (LogStatusNotification, {"status": "UploadFailure", "request_id": 5}),
        (CertificateSigningRequest, {"csr": "x", "status": "Rejected", "outcome": "rejected"}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_logs_are_listed_and_read_only(operator_client, model, row):
    cp = make_charge_point("CP-LOG")
    obj = model.objects.create(charge_point=cp, received_at=datetime(2025, 3, 1, tzinfo=timezone.utc), **row)
    base = f"/admin/chargepoints/{model._meta.model_name}/"
    listing = operator_client.get(base, {"charge_point__id__exact": cp.pk})
    assert listing.status_code == 200
    assert row["status"] in listing.content.decode()
    assert operator_client.get(f"{base}add/").status_code == 403
    detail = operator_client.get(f"{base}{obj.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # view only
    assert operator_client.post(f"{base}{obj.pk}/change/", {"status": "x"}).status_code == 403


def test_connectors_list_filters_by_status(operator_client):
    cp = make_charge_point("CP-CON")
    Connector.objects.create(charge_point=cp, connector_id=1, status="Faulted")
    Connector.objects.create(charge_point=cp, connector_id=2, status="Available")
    response = operator_client.get("/admin/chargepoints/connector/", {"status__exact": "Faulted"})
    html = response.content.decode()
    assert "CP-CON/1" in html and "CP-CON/2" not in html
