"""The WebSocket handshake and the life of a connection, over a real daphne server."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from chargepoints.models import ChargePoint
from tests.conftest import eventually
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_connect_registers_unknown_charge_point_and_marks_it_online(connect, cp_id):
    await connect(cp_id)
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.is_connected
    assert cp.connected_at is not None
    assert cp.remote_address.startswith("127.0.0.1:")
    assert cp.registration_status == "Accepted"


async def test_disconnect_marks_charge_point_offline(connect, cp_id):
    client = await connect(cp_id)
    await client.boot()
    await client.close()

    async def offline():
        cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
        return not cp.is_connected and cp.disconnected_at is not None

    await eventually(offline)


async def test_handshake_answers_with_subprotocol_ocpp16(daphne_server, cp_id):
    async with websockets.connect(daphne_server.ws_url(cp_id), subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"


@pytest.mark.parametrize("offered", [["ocpp2.0.1"], None], ids=["wrong", "missing"])
async def test_connection_without_ocpp16_subprotocol_is_closed(daphne_server, cp_id, offered):
    async with websockets.connect(daphne_server.ws_url(cp_id), subprotocols=offered) as ws:
        assert ws.subprotocol is None
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4001
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()


@pytest.mark.parametrize(
    "bad_id",
    ["", "x" * 49, "CP%20001", "CP%2F001", "CP%3C1%3E", "%C3%A9t%C3%A9"],
    ids=["empty", "too-long", "space", "slash", "angle-brackets", "non-ascii"],
)
async def test_invalid_charge_point_id_is_refused_in_the_handshake(daphne_server, bad_id):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(daphne_server.ws_url(bad_id), subprotocols=["ocpp1.6"])
    assert refused.value.response.status_code == 403
    assert await ChargePoint.objects.acount() == 0


async def test_charge_point_id_of_48_characters_is_accepted(connect):
    long_id = "A" * 48
    client = await connect(long_id)
    assert (await client.boot()).status == "Accepted"
    assert await ChargePoint.objects.filter(charge_point_id=long_id).aexists()


async def test_url_encoded_charge_point_id_is_decoded(daphne_server):
    client = await OCPPClient.open(daphne_server.ws_url("CP%3A01%40site"))
    try:
        await client.boot()
    finally:
        await client.close()
    assert await ChargePoint.objects.filter(charge_point_id="CP:01@site").aexists()


@pytest.fixture(scope="module")
def closed_server(module_daphne):
    """A server that registers no unknown charge point (LEVITY_AUTO_REGISTER=false)."""
    return module_daphne(LEVITY_AUTO_REGISTER="false")


async def test_unknown_charge_point_is_refused_when_auto_register_is_off(closed_server, cp_id):
    server = closed_server
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url(cp_id), subprotocols=["ocpp1.6"])
    assert refused.value.response.status_code == 403
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()
    assert f"{cp_id}: refused from 127.0.0.1:" in server.log()
    assert "unknown charge point (LEVITY_UNKNOWN_CHARGE_POINTS=refuse)" in server.log()


async def test_known_charge_point_connects_when_auto_register_is_off(closed_server, cp_id):
    await ChargePoint.objects.acreate(charge_point_id=cp_id)
    client = await OCPPClient.open(closed_server.ws_url(cp_id))
    try:
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.charge_point_vendor == "Acme"


async def test_reconnect_with_same_id_closes_old_socket_with_4000(daphne_server, cp_id):
    old = await websockets.connect(daphne_server.ws_url(cp_id), subprotocols=["ocpp1.6"])
    new = await OCPPClient.open(daphne_server.ws_url(cp_id))
    try:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(old.recv(), 5)
        assert old.close_code == 4000
        # The new session works, and the old one's end did not mark the charge point offline.
        assert (await new.boot()).status == "Accepted"
        await daphne_server.wait_for_log(f"{cp_id} disconnected (code 4000)")
        cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
        assert cp.is_connected
        assert cp.charge_point_vendor == "Acme"
    finally:
        await new.close()


async def test_reconnect_keeps_connectors_and_transactions(connect, cp_id):
    first = await connect(cp_id)
    await first.status(1, "Charging")
    second = await connect(cp_id)
    await second.status(2, "Available")
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    statuses = {c.connector_id: c.status async for c in cp.connectors.all()}
    assert statuses == {1: "Charging", 2: "Available"}
