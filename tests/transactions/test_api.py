"""GET /api/v1/transactions and /meter-values over a real server, with data a real charge point sent."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.ocpp_client import now_iso

pytestmark = pytest.mark.django_db(transaction=True)


async def charge(client, connector_id: int, id_tag: str, meter_start: int, meter_stop: int | None):
    started = await client.start_transaction(connector_id, id_tag, meter_start)
    await client.call(
        call.MeterValues(
            connector_id=connector_id,
            transaction_id=started.transaction_id,
            meter_value=[
                {
                    "timestamp": now_iso(),
                    "sampledValue": [
                        {"value": str(meter_start + 100)},
                        {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                    ],
                }
            ],
        )
    )
    if meter_stop is not None:
        await client.stop_transaction(started.transaction_id, meter_stop)
    return started.transaction_id


async def test_transactions_filter_by_charge_point_and_active(api, connect, cp_id):
    client = await connect(cp_id)
    done = await charge(client, 1, "TAG1", 1000, 5000)
    running = await charge(client, 2, "TAG2", 0, None)
    everything = (await api.get("/transactions", params={"charge_point": cp_id})).json()
    assert {t["transaction_id"] for t in everything["results"]} == {done, running}
    active = (await api.get("/transactions", params={"charge_point": cp_id, "active": "true"})).json()
    assert [(t["transaction_id"], t["is_active"]) for t in active["results"]] == [(running, True)]
    detail = (await api.get(f"/transactions/{done}")).json()
    assert (detail["meter_start"], detail["meter_stop"], detail["energy_wh"]) == (1000, 5000, 4000)


async def test_a_stop_timestamped_before_its_start_is_flagged(api, connect, cp_id):
    client = await connect(cp_id)
    started = await client.start_transaction(1, "TAG1", 1000, timestamp="2025-03-01T10:00:00Z")
    await client.stop_transaction(started.transaction_id, 1500, timestamp="2025-03-01T09:00:00Z")
    detail = (await api.get(f"/transactions/{started.transaction_id}")).json()
    assert detail["stop_before_start"] is True
    assert (detail["stop_timestamp"], detail["energy_wh"]) == ("2025-03-01T09:00:00Z", 500)


async def test_transactions_filter_by_id_tag(api, connect, cp_id):
    client = await connect(cp_id)
    await charge(client, 1, "ALICE", 0, 10)
    await charge(client, 1, "BOB", 10, 20)
    found = (await api.get("/transactions", params={"charge_point": cp_id, "id_tag": "BOB"})).json()
    assert [t["id_tag"] for t in found["results"]] == ["BOB"]


async def test_meter_values_filter_by_transaction_and_measurand(api, connect, cp_id):
    client = await connect(cp_id)
    transaction_id = await charge(client, 1, "TAG1", 1000, None)
    await charge(client, 2, "TAG2", 0, None)
    found = (
        await api.get(
            "/meter-values", params={"transaction": transaction_id, "measurand": "Power.Active.Import"}
        )
    ).json()
    assert [(m["transaction_id"], m["value"], m["unit"]) for m in found["results"]] == [
        (transaction_id, "7200", "W")
    ]
    energy = (await api.get("/meter-values", params={"transaction": transaction_id})).json()
    assert energy["count"] == 2


async def test_bad_filter_value_is_400(api):
    response = await api.get("/transactions", params={"started_after": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/meter-values", {"transaction": "99999999999999999999999"}),
        ("/meter-values", {"connector_id": "-99999999999999999999999"}),
        ("/transactions", {"connector_id": "1e400"}),
        ("/meter-values", {"timestamp_after": "9999-12-31T23:59:59-23:00"}),
        ("/transactions", {"started_before": "0001-01-01T00:00:00+23:00"}),
    ],
)
async def test_a_filter_value_out_of_the_columns_range_is_400(api, path, params):
    response = await api.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
