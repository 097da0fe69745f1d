"""A session's end, its replacement, and what may not hold it up, over a real daphne server."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
import websockets

from chargepoints.models import ChargePoint
from tests.conftest import eventually
from tests.raw_websocket import RawClient
from transactions.models import MeterValue

pytestmark = pytest.mark.django_db(transaction=True)


def meter_values_frame(unique_id: str, timestamp: str) -> list:
    samples = [
        {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "16", "measurand": "Current.Import", "unit": "A"},
        {"value": "230", "measurand": "Voltage", "unit": "V"},
    ]
    return [
        2,
        unique_id,
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": timestamp, "sampledValue": samples}]},
    ]


async def test_a_session_closed_with_calls_still_queued_ends_cleanly(daphne_server, cp_id):
    client = await RawClient.open(daphne_server.port, cp_id)
    for i in range(40):
        client.send_text(json.dumps(meter_values_frame(f"mv-{i}", f"2026-01-01T10:{i:02d}:00Z")))
    await client.writer.drain()
    # A reconnect closes this session while its CALLs are queued; it does not answer
    # the server's Close (a charge point on a bad network), so the socket stays open.
    async with websockets.connect(daphne_server.ws_url(cp_id), subprotocols=["ocpp1.6"]) as newer:
        await newer.send(json.dumps([2, "hb", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(newer.recv(), 10))[:2] == [3, "hb"]
        await daphne_server.wait_for_log(f"{cp_id} disconnected (code", timeout=20)
    client.drop()
    await eventually(
        lambda: ChargePoint.objects.filter(charge_point_id=cp_id, is_connected=False).aexists(), timeout=20
    )
    await asyncio.sleep(0.5)  # a task's exception is logged when the task is collected
    log = daphne_server.log()
    assert "Task exception was never retrieved" not in log
    assert "Attempt to send on a closed protocol" not in log
    # Each message's rows are all stored or none: nothing half-written.
    per_message = Counter(
        [mv.timestamp async for mv in MeterValue.objects.filter(charge_point__charge_point_id=cp_id)]
    )
    assert set(per_message.values()) <= {3}


async def test_a_disconnect_never_overwrites_a_newer_connect(daphne_server, cp_id):
    url = daphne_server.ws_url(cp_id)
    ended = f"{cp_id} disconnected (code"

    async def sessions_ended(count: int):
        return daphne_server.log().count(ended) >= count

    async def drop_after(client: RawClient, delay: float) -> None:
        await asyncio.sleep(delay)
        client.drop()

    offline_tries = []
    for attempt in range(30):
        first = await RawClient.open(daphne_server.port, cp_id)
        # The first goes away while the second connects, a little later each try.
        _, second = await asyncio.gather(
            drop_after(first, attempt * 0.001), websockets.connect(url, subprotocols=["ocpp1.6"])
        )
        try:
            await second.send(json.dumps([2, "b", "Heartbeat", {}]))
            assert json.loads(await asyncio.wait_for(second.recv(), 10))[:2] == [3, "b"]
            # The first session has ended (its disconnect is written before it logs so).
            await eventually(lambda attempt=attempt: sessions_ended(2 * attempt + 1), timeout=20)
            row = await ChargePoint.objects.aget(charge_point_id=cp_id)
            if not row.is_connected:
                offline_tries.append(attempt)
        finally:
            await second.close()
        await eventually(lambda attempt=attempt: sessions_ended(2 * attempt + 2), timeout=20)
    assert offline_tries == []


async def test_a_blocking_sync_receiver_does_not_delay_another_charge_points_answer(start_daphne, cp_id):
    server = start_daphne(LEVITY_EXTRA_APPS="tests.slow_receiver")
    async with (
        websockets.connect(server.ws_url(f"SLOW-{cp_id}"), subprotocols=["ocpp1.6"]) as slow,
        websockets.connect(server.ws_url(cp_id), subprotocols=["ocpp1.6"]) as other,
    ):
        await slow.send(json.dumps([2, "hb", "Heartbeat", {}]))
        await server.wait_for_log(f"holding up the Heartbeat of SLOW-{cp_id}")  # asleep in its thread
        started = time.monotonic()
        await other.send(
            json.dumps([2, "boot", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
        )
        answer = json.loads(await asyncio.wait_for(other.recv(), 10))
        waited = time.monotonic() - started
        assert answer[:2] == [3, "boot"]
        assert waited < 1.0
        # The slow charge point is still answered, after its receiver.
        assert json.loads(await asyncio.wait_for(slow.recv(), 10))[:2] == [3, "hb"]
