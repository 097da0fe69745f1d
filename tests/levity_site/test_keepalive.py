"""WebSocket keep-alive: a charge point that stops answering pings is recorded offline.

A charge point whose power is cut, or whose network is gone, sends no close frame:
its TCP connection looks open until something is sent and not answered. The
server pings an idle connection every LEVITY_WEBSOCKET_PING_INTERVAL seconds and
drops it when no pong comes within LEVITY_WEBSOCKET_PING_TIMEOUT.
"""

from __future__ import annotations

import json
import struct
import time

import pytest
import websockets
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint
from tests.conftest import eventually
from tests.raw_websocket import RawClient

pytestmark = pytest.mark.django_db(transaction=True)

BOOT = [2, "boot", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}]


async def online(charge_point_id: str) -> bool:
    row = await ChargePoint.objects.filter(charge_point_id=charge_point_id).afirst()
    return bool(row and row.is_connected)


async def seconds_until_offline(charge_point_id: str, timeout: float) -> float:
    started = time.monotonic()

    async def offline() -> bool:
        return not await online(charge_point_id)

    await eventually(offline, timeout=timeout, interval=0.1, what=f"{charge_point_id} offline")
    return time.monotonic() - started


async def booted(server, charge_point_id: str):
    ws = await websockets.connect(
        server.ws_url(charge_point_id), subprotocols=[Subprotocol("ocpp1.6")], ping_interval=None
    )
    await ws.send(json.dumps(BOOT))
    assert json.loads(await ws.recv())[0] == 3
    await eventually(lambda: online(charge_point_id), what=f"{charge_point_id} online")
    return ws


async def test_a_charge_point_that_stops_answering_pings_is_offline_within_interval_and_timeout(
    start_daphne, cp_id
):
    server = start_daphne(LEVITY_WEBSOCKET_PING_INTERVAL="2", LEVITY_WEBSOCKET_PING_TIMEOUT="2")
    silent = await booted(server, cp_id)
    answering = await booted(server, f"{cp_id}-ok")
    try:
        # The silent one's host is gone: its socket reads nothing more, so no pong.
        silent.transport.pause_reading()
        # Interval 2 s + timeout 2 s + daphne's 2 s check: 6 s, and room for a loaded machine.
        took = await seconds_until_offline(cp_id, timeout=20)
        assert took >= 2  # not before a ping has gone unanswered for its timeout
        assert f"{cp_id} disconnected" in server.log()
        # The one that answers pings (websockets does, by itself) stays online meanwhile.
        assert await online(f"{cp_id}-ok")
        await answering.send(json.dumps([2, "hb", "Heartbeat", {}]))
        assert json.loads(await answering.recv())[0] == 3
    finally:
        silent.transport.abort()
        await answering.close()


async def test_a_charge_point_has_the_ping_timeout_to_answer_a_ping(start_daphne, cp_id):
    server = start_daphne(LEVITY_WEBSOCKET_PING_INTERVAL="1", LEVITY_WEBSOCKET_PING_TIMEOUT="2")
    client = await RawClient.open(server.port, cp_id)
    try:
        opcode, payload = await client.read_frame(timeout=15)
        assert opcode == 0x9
        # autobahn's ping carries the time it was sent (time.time_ns(), first 8 bytes).
        (sent_ns,) = struct.unpack(">Q", payload[:8])
        await client.dropped_by_server(timeout=15)  # never answered
        assert 2 <= time.time() - sent_ns / 1e9 < 6
    finally:
        client.drop()


def test_the_ping_options_default_to_the_settings_and_the_command_line_overrides_them(settings):
    from daphne.cli import CommandLineInterface

    from levity_site.server import levity_defaults

    settings.LEVITY_WEBSOCKET_PING_INTERVAL = 7
    settings.LEVITY_WEBSOCKET_PING_TIMEOUT = 3
    command_line = CommandLineInterface()
    command_line.parser.set_defaults(**levity_defaults())
    args = command_line.parser.parse_args(["levity_site.asgi:application"])
    assert (args.ping_interval, args.ping_timeout) == (7, 3)
    args = command_line.parser.parse_args(["--ping-timeout", "5", "levity_site.asgi:application"])
    assert (args.ping_interval, args.ping_timeout) == (7, 5)
