"""Per-charge-point and per-address limits, over a real daphne server (docs/security.md, "Limits")."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets

from chargepoints.models import ChargePoint
from chargepoints.session import limits
from tests.conftest import DaphneServer, eventually, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def heartbeat(unique_id: str) -> str:
    return json.dumps([2, unique_id, "Heartbeat", {}])


def meter_values(unique_id: str, sampled_values: int) -> str:
    sampled = [{"value": str(n), "measurand": "Energy.Active.Import.Register"} for n in range(sampled_values)]
    payload = {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": sampled}],
    }
    return json.dumps([2, unique_id, "MeterValues", payload])


def new_id() -> str:
    return f"CP-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def limited_server(django_db_setup, test_db_path, tmp_path_factory):
    """daphne with small per-charge-point limits."""
    env = server_env(
        test_db_path,
        LEVITY_CALL_RATE="1",
        LEVITY_CALL_BURST="3",
        LEVITY_CALL_RATE_CLOSE_AFTER_SECONDS="2",
        LEVITY_MAX_SAMPLED_VALUES="5",
    )
    server = DaphneServer(env, tmp_path_factory.mktemp("limits") / "daphne.log").start()
    yield server
    server.stop()


@pytest.mark.once
async def test_calls_past_the_burst_are_answered_with_a_callerror(limited_server):
    async with websockets.connect(limited_server.ws_url(new_id()), subprotocols=["ocpp1.6"]) as ws:
        for n in range(4):
            await ws.send(heartbeat(f"hb-{n}"))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
    by_id = {answer[1]: answer for answer in answers}
    assert [by_id[f"hb-{n}"][0] for n in range(3)] == [3, 3, 3]
    assert by_id["hb-3"][:3] == [4, "hb-3", "GenericError"]
    assert "More than 1 messages a second" in by_id["hb-3"][3]


@pytest.mark.once
async def test_a_charge_point_staying_past_the_rate_is_closed_with_1008(limited_server):
    charge_point_id = new_id()
    async with websockets.connect(limited_server.ws_url(charge_point_id), subprotocols=["ocpp1.6"]) as ws:

        async def flood() -> None:
            n = 0
            while True:
                await ws.send(heartbeat(f"hb-{n}"))
                n += 1
                await asyncio.sleep(0.02)

        async def drain() -> None:
            while True:
                await ws.recv()

        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(asyncio.gather(flood(), drain()), 45)
        assert ws.close_code == limits.CLOSE_POLICY_VIOLATION
    await limited_server.wait_for_log(f"{charge_point_id}: closed (1008): more than 1 messages a second")


@pytest.mark.once
async def test_meter_values_with_more_sampled_values_than_the_limit_are_refused(limited_server):
    async with websockets.connect(limited_server.ws_url(new_id()), subprotocols=["ocpp1.6"]) as ws:
        await ws.send(meter_values("too-many", 6))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer[:3] == [4, "too-many", "OccurenceConstraintViolation"]
    assert "6 sampled values; at most 5" in answer[3]


async def test_meter_values_within_the_limit_are_accepted(limited_server):
    async with websockets.connect(limited_server.ws_url(new_id()), subprotocols=["ocpp1.6"]) as ws:
        await ws.send(meter_values("five", 5))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer == [3, "five", {}]


@pytest.mark.parametrize("dot_id", [".", ".."])
async def test_dot_segment_ids_are_refused(daphne_server, dot_id):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(daphne_server.ws_url(dot_id), subprotocols=["ocpp1.6"])
    assert refused.value.response.status_code == 403
    assert not await ChargePoint.objects.filter(charge_point_id=dot_id).aexists()


async def refused_status(server, charge_point_id: str, subprotocols=("ocpp1.6",)) -> int | None:
    """The HTTP status of a refused handshake, or None when it was accepted."""
    try:
        async with websockets.connect(server.ws_url(charge_point_id), subprotocols=list(subprotocols)) as ws:
            if ws.subprotocol is None:  # accepted, then closed for the missing subprotocol
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            return None
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_an_address_with_too_many_failed_handshakes_is_refused(start_daphne):
    server = start_daphne(LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS="3")
    assert await refused_status(server, "bad%20id") == 403
    assert await refused_status(server, new_id(), subprotocols=["ocpp2.0.1"]) is None  # closed 4001
    assert await refused_status(server, "..") == 403
    # A good charge point from the same address is now refused too.
    good = new_id()
    assert await refused_status(server, good) == 403
    assert not await ChargePoint.objects.filter(charge_point_id=good).aexists()
    await server.wait_for_log("127.0.0.1: 3 failed handshakes within 60 s (last: invalid id)")


async def test_unknown_ids_count_as_failed_handshakes(start_daphne):
    server = start_daphne(LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS="2", LEVITY_AUTO_REGISTER="false")
    assert await refused_status(server, new_id()) == 403
    assert await refused_status(server, new_id()) == 403
    await server.wait_for_log(
        "127.0.0.1: 2 failed handshakes within 60 s (last: unknown charge point (LEVITY_UNKNOWN_CHARGE_POINTS=refuse))"
    )


@pytest.mark.once
async def test_failed_handshakes_are_forgotten_after_the_window(start_daphne):
    server = start_daphne(
        LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS="1", LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS="1"
    )
    assert await refused_status(server, "bad%20id") == 403
    assert await refused_status(server, new_id()) == 403

    async def accepted_again() -> bool:  # the window is 1 s
        return await refused_status(server, new_id()) is None

    await eventually(accepted_again, interval=0.1, what="the address accepted after the window")


@pytest.mark.once
async def test_connections_per_address_are_limited(start_daphne):
    server = start_daphne(LEVITY_MAX_CONNECTIONS_PER_ADDRESS="2")
    first = await websockets.connect(server.ws_url(new_id()), subprotocols=["ocpp1.6"])
    second = await websockets.connect(server.ws_url(new_id()), subprotocols=["ocpp1.6"])
    try:
        assert await refused_status(server, new_id()) == 403
        await server.wait_for_log("refused")
        await first.close()

        async def accepted_again() -> bool:  # the server counts the close once it has seen it
            return await refused_status(server, new_id()) is None

        await eventually(accepted_again, interval=0.1, what="a connection accepted after one closed")
    finally:
        await first.close()
        await second.close()


@pytest.mark.once
def test_token_bucket_refills_at_its_rate():
    rate = limits.CallRate(rate=2, burst=2, close_after=1)
    assert rate.admit(now=rate.updated) and rate.admit(now=rate.updated)
    assert not rate.admit(now=rate.updated)
    assert rate.delay(now=rate.updated) == pytest.approx(0.5)
    assert rate.admit(now=rate.updated + 0.5)


@pytest.mark.once
def test_excess_is_sustained_only_while_the_charge_point_stays_past_the_rate():
    rate = limits.CallRate(rate=1, burst=2, close_after=5)
    start = rate.updated
    for _ in range(2):
        assert rate.admit(now=start)
    assert not rate.admit(now=start)
    assert not rate.sustained(now=start + 4)
    assert rate.sustained(now=start + 5)
    # Quiet long enough to leave a token unused: no longer past the rate.
    assert rate.admit(now=start + 10)
    assert not rate.sustained(now=start + 10)
