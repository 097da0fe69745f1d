"""CP-initiated messages over a real daphne server, asserting frames and rows."""

from __future__ import annotations

import asyncio

import pytest

from chargepoints.models import ChargePoint, Connector, StatusNotification

pytestmark = pytest.mark.django_db(transaction=True)


async def test_boot_notification_is_accepted_with_interval_and_records_identity(connect, cp_id):
    client = await connect(cp_id)
    result = await client.boot(
        vendor="Acme", model="AC-22", firmware_version="1.2.3", charge_point_serial_number="SN1"
    )
    assert result.status == "Accepted"
    assert result.interval == 300
    assert result.current_time.endswith("Z")
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (cp.charge_point_vendor, cp.charge_point_model) == ("Acme", "AC-22")
    assert cp.firmware_version == "1.2.3"
    assert cp.charge_point_serial_number == "SN1"
    assert cp.is_connected and cp.last_boot_at is not None


async def test_heartbeat_answers_current_time_and_last_seen_is_flushed(connect, cp_id):
    client = await connect(cp_id)
    result = await client.call(__import__("ocpp.v16.call", fromlist=["Heartbeat"]).Heartbeat())
    assert result.current_time.endswith("Z")
    await asyncio.sleep(1.5)  # LEVITY_LAST_SEEN_FLUSH_SECONDS=0.5 in tests
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.last_heartbeat_at is not None


async def test_status_notification_updates_connector_and_history(connect, cp_id):
    client = await connect(cp_id)
    await client.status(1, "Available")
    await client.status(1, "Preparing")
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=1)
    assert connector.status == "Preparing"
    history = [
        s.status
        async for s in StatusNotification.objects.filter(
            charge_point__charge_point_id=cp_id
        ).order_by("id")
    ]
    assert history == ["Available", "Preparing"]
