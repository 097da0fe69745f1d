"""GET /api/v1/charge-points, /connectors, /security-events: paginated and filterable; the schema and docs."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def test_charge_points_are_paginated(api, connect, cp_id):
    for n in range(3):
        await (await connect(f"{cp_id}-{n}")).boot()
    page = (await api.get("/charge-points", params={"search": cp_id, "page_size": 2})).json()
    assert page["count"] == 3
    assert [cp["charge_point_id"] for cp in page["results"]] == [f"{cp_id}-0", f"{cp_id}-1"]
    assert page["next"] is not None
    rest = (await api.get(page["next"])).json()
    assert [cp["charge_point_id"] for cp in rest["results"]] == [f"{cp_id}-2"]


async def test_charge_points_filter_by_vendor_and_connection(api, connect, cp_id):
    await (await connect(f"{cp_id}-a")).boot(vendor="Acme")
    await (await connect(f"{cp_id}-b")).boot(vendor="Other")
    found = (await api.get("/charge-points", params={"search": cp_id, "charge_point_vendor": "Other"})).json()
    assert [cp["charge_point_id"] for cp in found["results"]] == [f"{cp_id}-b"]
    online = (await api.get("/charge-points", params={"search": cp_id, "is_connected": "true"})).json()
    assert online["count"] == 2


async def test_charge_point_detail_has_identity_and_connectors(api, connect, cp_id):
    client = await connect(cp_id)
    await client.boot(vendor="Acme", model="AC-22", firmware_version="1.2.3")
    await client.status(1, "Available")
    await client.status(2, "Faulted", error_code="GroundFailure")
    detail = (await api.get(f"/charge-points/{cp_id}")).json()
    assert (detail["charge_point_vendor"], detail["firmware_version"], detail["is_connected"]) == (
        "Acme",
        "1.2.3",
        True,
    )
    assert [(c["connector_id"], c["status"], c["error_code"]) for c in detail["connectors"]] == [
        (1, "Available", "NoError"),
        (2, "Faulted", "GroundFailure"),
    ]


async def test_unknown_charge_point_detail_is_404(api):
    response = await api.get("/charge-points/NOPE")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_connectors_filter_by_charge_point_and_status(api, connect, cp_id):
    client = await connect(cp_id)
    await client.status(1, "Available")
    await client.status(2, "Charging")
    found = (await api.get("/connectors", params={"charge_point": cp_id, "status": "Charging"})).json()
    assert [(c["charge_point"], c["connector_id"]) for c in found["results"]] == [(cp_id, 2)]


async def test_security_events_are_listed_newest_first_and_filter_by_charge_point_and_type(
    api, connect, cp_id
):
    from ocpp.v16 import call

    client = await connect(cp_id)
    for event_type, info in [("StartupOfTheDevice", "boot"), ("TamperDetectionActivated", "lid open")]:
        await client.call(
            call.SecurityEventNotification(type=event_type, timestamp="2026-03-01T10:00:00Z", tech_info=info)
        )
    listed = (await api.get("/security-events", params={"charge_point": cp_id})).json()
    assert [(e["type"], e["tech_info"]) for e in listed["results"]] == [
        ("TamperDetectionActivated", "lid open"),
        ("StartupOfTheDevice", "boot"),
    ]
    assert listed["results"][0]["charge_point"] == cp_id
    assert listed["results"][0]["timestamp"].startswith("2026-03-01T10:00:00")
    tamper = (
        await api.get("/security-events", params={"charge_point": cp_id, "type": "TamperDetectionActivated"})
    ).json()
    assert tamper["count"] == 1


async def test_openapi_schema_documents_the_command_endpoint(daphne_server):
    async with httpx.AsyncClient(base_url=daphne_server.http_url) as client:
        response = await client.get("/api/v1/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/v1/charge-points/{charge_point_id}/commands/"]["post"]
    assert set(operation["responses"]) >= {"201", "401", "404", "409", "422", "502", "504"}
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_interactive_docs_are_served_with_their_own_assets(daphne_server):
    async with httpx.AsyncClient(base_url=daphne_server.http_url) as client:
        response = await client.get("/api/v1/docs/")
        assert response.status_code == 200
        bundle = re.search(r'src="(/static/[^"]*swagger-ui-bundle\.js)"', response.text).group(1)
        assert (await client.get(bundle)).status_code == 200
