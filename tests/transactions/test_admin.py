"""The transactions admin: what an operator sees of transactions, meter values and ID tags."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from chargepoints.models import ChargePoint
from tests.admin_fixtures import form_fields
from transactions.models import IdTag, MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

TX_LIST = "/admin/transactions/transaction/"
TAG_LIST = "/admin/transactions/idtag/"
START = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)


def make_transaction(cp: ChargePoint, **fields) -> Transaction:
    values = {
        "connector_id": 1,
        "id_tag": "CARD-1",
        "id_tag_status": "Accepted",
        "meter_start": 1000,
        "start_timestamp": START,
    }
    values.update(fields)
    return Transaction.objects.create(charge_point=cp, **values)


def listed_transactions(response) -> list[int]:
    return [
        int(n)
        for n in re.findall(
            r'<th class="field-transaction_id"><a href="[^"]+">(\d+)</a>', response.content.decode()
        )
    ]


@pytest.fixture
def cp() -> ChargePoint:
    return ChargePoint.objects.create(charge_point_id="CP-TX")


def test_transaction_list_shows_energy_in_kwh_and_duration(operator_client, cp):
    tx = make_transaction(
        cp, meter_stop=8500, energy_wh=7500, stop_timestamp=START + timedelta(hours=1, minutes=30)
    )
    html = operator_client.get(TX_LIST).content.decode()
    assert listed_transactions(operator_client.get(TX_LIST)) == [tx.pk]
    assert "7.500 kWh" in html
    assert "1:30:00" in html
    assert ">CP-TX</a>" in html and ">CARD-1</a>" in html


def test_active_transaction_shows_energy_so_far_from_its_meter_values(operator_client, cp):
    tx = make_transaction(cp, start_timestamp=datetime.now(timezone.utc) - timedelta(minutes=5))
    for minute, wh in [(1, 1500.0), (2, 2250.0)]:
        MeterValue.objects.create(
            charge_point=cp,
            connector_id=1,
            transaction=tx,
            timestamp=START + timedelta(minutes=minute),
            received_at=START,
            value=str(wh),
            normalized_value=wh,
            normalized_unit="Wh",
        )
    html = operator_client.get(TX_LIST).content.decode()
    assert "1.250 kWh so far" in html
    assert re.search(r"0:0[45]:\d\d \(active\)", html)


def test_meter_stop_below_start_is_flagged_in_the_list(operator_client, cp):
    make_transaction(
        cp, meter_stop=500, stop_timestamp=START + timedelta(hours=1), meter_stop_below_start=True
    )
    assert "⚠ not stored" in operator_client.get(TX_LIST).content.decode()


def test_a_stop_before_its_start_is_flagged_in_the_list_and_filtered(operator_client, cp):
    early = make_transaction(
        cp, meter_stop=1500, stop_timestamp=START - timedelta(hours=1), stop_before_start=True
    )
    make_transaction(cp, id_tag="B", meter_stop=1500, stop_timestamp=START + timedelta(hours=1))
    assert "⚠ stop before start" in operator_client.get(TX_LIST).content.decode()
    assert listed_transactions(operator_client.get(TX_LIST, {"stop_before_start__exact": "1"})) == [early.pk]


def test_transactions_filter_active_and_stopped(operator_client, cp):
    active = make_transaction(cp, id_tag="A")
    stopped = make_transaction(cp, id_tag="B", meter_stop=2000, stop_timestamp=START + timedelta(hours=1))
    assert listed_transactions(operator_client.get(TX_LIST, {"state": "active"})) == [active.pk]
    assert listed_transactions(operator_client.get(TX_LIST, {"state": "stopped"})) == [stopped.pk]


def test_transactions_filter_by_charge_point(operator_client, cp):
    other = ChargePoint.objects.create(charge_point_id="CP-OTHER")
    mine = make_transaction(cp)
    make_transaction(other)
    response = operator_client.get(TX_LIST, {"charge_point__id__exact": cp.pk})
    assert listed_transactions(response) == [mine.pk]
    assert "CP-OTHER" in response.content.decode()  # offered in the charge point filter


def test_transactions_filter_by_id_tag(operator_client, cp):
    mine = make_transaction(cp, id_tag="CARD-9")
    make_transaction(cp, id_tag="CARD-8")
    assert listed_transactions(operator_client.get(TX_LIST, {"id_tag": "CARD-9"})) == [mine.pk]
    assert listed_transactions(operator_client.get(TX_LIST, {"q": "CARD-9"})) == [mine.pk]


def test_transactions_search_by_transaction_id(operator_client, cp):
    first = make_transaction(cp, id_tag="X1")
    make_transaction(cp, id_tag="X2")
    assert listed_transactions(operator_client.get(TX_LIST, {"q": str(first.pk)})) == [first.pk]


def test_transaction_id_search_keeps_the_active_filters(operator_client, cp):
    stopped = make_transaction(cp, meter_stop=2000, stop_timestamp=START + timedelta(hours=1))
    response = operator_client.get(TX_LIST, {"q": str(stopped.pk), "state": "active"})
    assert listed_transactions(response) == []


def test_transactions_date_hierarchy_drills_down_by_start(operator_client, cp):
    march = make_transaction(cp, id_tag="M")
    make_transaction(cp, id_tag="F", start_timestamp=START - timedelta(days=30))
    response = operator_client.get(TX_LIST, {"start_timestamp__year": 2025, "start_timestamp__month": 3})
    assert listed_transactions(response) == [march.pk]
    html = response.content.decode()
    assert '<nav class="toplinks">' in html and "March 1" in html  # the days of March


def test_transaction_page_is_read_only(operator_client, cp):
    tx = make_transaction(cp)
    page = operator_client.get(f"{TX_LIST}{tx.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert operator_client.post(f"{TX_LIST}{tx.pk}/change/", {"meter_start": 0}).status_code == 403
    assert operator_client.get(f"{TX_LIST}add/").status_code == 403


def test_transaction_page_lists_its_meter_values_paginated(operator_client, cp):
    tx = make_transaction(cp)
    MeterValue.objects.bulk_create(
        MeterValue(
            charge_point=cp,
            connector_id=1,
            transaction=tx,
            timestamp=START + timedelta(seconds=n),
            received_at=START,
            value=f"{n}.5",
            unit="kWh",
            normalized_value=n * 1000 + 500,
            normalized_unit="Wh",
        )
        for n in range(120)
    )
    first = operator_client.get(f"{TX_LIST}{tx.pk}/change/").content.decode()
    assert "Meter values (120)" in first
    assert ">0.5<" in first and ">49.5<" in first and ">50.5<" not in first
    assert "500 Wh" in first  # the normalised value beside the reported one
    assert "mv_page=3" in first
    third = operator_client.get(f"{TX_LIST}{tx.pk}/change/", {"mv_page": 3}).content.decode()
    assert ">100.5<" in third and ">119.5<" in third and ">99.5<" not in third
    assert f"/admin/transactions/metervalue/?transaction__id__exact={tx.pk}" in first


# --- meter values ---------------------------------------------------------------------------------


def test_meter_value_list_filters_by_transaction_and_measurand(operator_client, cp):
    tx = make_transaction(cp)
    other = make_transaction(cp, id_tag="OTHER")
    for t, measurand in [(tx, "Voltage"), (tx, "Current.Import"), (other, "Voltage")]:
        MeterValue.objects.create(
            charge_point=cp,
            connector_id=1,
            transaction=t,
            timestamp=START,
            received_at=START,
            value="230",
            measurand=measurand,
        )
    response = operator_client.get(
        "/admin/transactions/metervalue/",
        {"transaction__id__exact": tx.pk, "measurand": "Voltage"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert len(re.findall(r'<td class="field-measurand">Voltage</td>', html)) == 1
    assert operator_client.get("/admin/transactions/metervalue/add/").status_code == 403


# --- ID tags ---------------------------------------------------------------------------


def test_operator_adds_an_id_tag_in_the_admin(operator_client):
    response = operator_client.post(
        f"{TAG_LIST}add/",
        {
            "id_tag": "NEW-CARD",
            "status": "Accepted",
            "expiry_date_0": "2030-01-01",
            "expiry_date_1": "00:00:00",
            "parent_id_tag": "FLEET",
            "note": "driver 7",
        },
    )
    assert response.status_code == 302
    tag = IdTag.objects.get(id_tag="NEW-CARD")
    assert tag.parent_id_tag == "FLEET" and tag.expiry_date.year == 2030


def test_operator_blocks_an_id_tag_from_the_list(operator_client):
    tag = IdTag.objects.create(id_tag="CARD-B")
    page = operator_client.get(TAG_LIST).content.decode()
    fields = form_fields(page, "changelist-form")
    fields["form-0-status"] = "Blocked"
    fields["_save"] = "Save"
    response = operator_client.post(TAG_LIST, fields)
    assert response.status_code == 302
    tag.refresh_from_db()
    assert tag.status == "Blocked"


def test_id_tag_list_shows_what_authorize_answers_and_filters_expired(operator_client):
    IdTag.objects.create(id_tag="OLD", expiry_date=datetime(2020, 1, 1, tzinfo=timezone.utc))
    IdTag.objects.create(id_tag="FRESH")
    response = operator_client.get(TAG_LIST, {"expiry": "expired"})
    html = response.content.decode()
    assert "OLD" in html and "FRESH" not in html
    assert '<td class="field-authorizes_as">Expired</td>' in html


def test_id_tag_longer_than_20_characters_is_refused(operator_client):
    response = operator_client.post(f"{TAG_LIST}add/", {"id_tag": "X" * 21, "status": "Accepted"})
    assert response.status_code == 200
    assert not IdTag.objects.exists()


async def test_id_tag_blocked_over_http_is_blocked_for_the_charge_point(
    browser, daphne_server, raw_ws, cp_id
):
    tag = await IdTag.objects.acreate(id_tag="CARD-HTTP")
    url = f"{TAG_LIST}{tag.pk}/change/"
    fields = form_fields(browser.get(url).text, "idtag_form")
    fields.update(status="Blocked", _save="Save")
    assert browser.post(url, data=fields).status_code == 302
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "a", "Authorize", {"idTag": "CARD-HTTP"}])
    assert answer == [3, "a", {"idTagInfo": {"status": "Blocked"}}]
