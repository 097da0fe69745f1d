"""Limits the server enforces before the application sees a byte (levity_site.protocol_limits).

Raw sockets, so that a test can send what no well-behaved client would: half a
frame, a body announced but never sent, a request head dripped byte by byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid

import psutil
import pytest
import websockets

from tests.ocpp_client import OCPPClient
from tests.raw_websocket import RawClient

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.once,  # the wire, before the application: nothing backend-specific is stored
]


def new_id() -> str:
    return f"CP-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def frame_limited_server(module_daphne):
    """A server taking WebSocket frames and messages of up to 64 KiB."""
    return module_daphne(LEVITY_MAX_FRAME_BYTES="65536")


async def test_a_frame_larger_than_the_limit_closes_with_1009_before_it_is_read(frame_limited_server):
    client = await RawClient.open(frame_limited_server.port, new_id())
    # Announce 100 MB, send only the first kilobyte: the server must not wait for the rest.
    client.writer.write(client.frame_header(100 * 1024 * 1024) + b"x" * 1024)
    await client.writer.drain()
    assert await client.read_close_code() == 1009
    client.drop()


async def test_a_message_larger_than_the_limit_in_fragments_closes_with_1009(frame_limited_server):
    client = await RawClient.open(frame_limited_server.port, new_id())
    fragment = b"x" * 40_000
    # Two 40 kB fragments of one text message (FIN unset on the first).
    client.writer.write(bytes([0x01]) + client.frame_header(len(fragment))[1:] + fragment)
    client.writer.write(bytes([0x80]) + client.frame_header(len(fragment))[1:] + fragment)
    await client.writer.drain()
    assert await client.read_close_code() == 1009
    client.drop()


async def test_a_frame_within_the_limit_is_answered(frame_limited_server):
    async with websockets.connect(frame_limited_server.ws_url(new_id()), subprotocols=["ocpp1.6"]) as ws:
        await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "acme", "data": "x" * 60_000}]))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer[:2] == [3, "big"]


async def test_a_client_has_the_close_timeout_to_answer_a_close_frame(start_daphne):
    server = start_daphne(LEVITY_WEBSOCKET_CLOSE_TIMEOUT="2")
    charge_point_id = new_id()
    first = await RawClient.open(server.port, charge_point_id)
    # A second connection of the same id replaces the first: the server closes it with 4000.
    second = await OCPPClient.open(server.ws_url(charge_point_id))
    try:
        assert await first.read_close_code() == 4000
        closed_at = time.monotonic()
        # The first never answers the Close frame: the server drops it, but not before 2 s
        # (the frame took a moment to arrive: a loaded machine's margin).
        await first.dropped_by_server()
        waited = time.monotonic() - closed_at
        assert 1.75 <= waited < 6, waited
    finally:
        first.drop()
        await second.close()


async def http_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_a_request_body_declared_larger_than_the_limit_is_refused_before_it_is_sent(daphne_server):
    # 100 MB announced, none of it sent: the answer comes from the head alone.
    response = await http_exchange(
        daphne_server.port,
        b"POST /api/v1/charge-points/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer garbage\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body) == {
        "error": "request_too_large",
        "detail": "The request body may be at most 1048576 bytes.",
    }
    await daphne_server.wait_for_log(
        "request body of 100000000 bytes refused (LEVITY_MAX_REQUEST_BODY_BYTES=1048576)"
    )


async def test_a_chunked_request_body_growing_past_the_limit_is_refused(start_daphne):
    server = start_daphne(LEVITY_MAX_REQUEST_BODY_BYTES="1000")
    chunk = b"x" * 600
    response = await http_exchange(
        server.port,
        b"POST /api/v1/charge-points/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2,
    )
    assert response.startswith(b"HTTP/1.1 413")


async def test_a_request_body_within_the_limit_reaches_the_api(daphne_server):
    body = b"{}"
    response = await http_exchange(
        daphne_server.port,
        b"POST /api/v1/charge-points/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    # The API's own answer (no token), not the server's 413.
    assert response.split(b"\r\n", 1)[0] in (b"HTTP/1.1 401 Unauthorized", b"HTTP/1.1 403 Forbidden")


async def test_slow_handshakes_time_out_without_starving_new_charge_points(start_daphne):
    server = start_daphne(LEVITY_HANDSHAKE_TIMEOUT_SECONDS="2")
    slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(200):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ocpp/slow HTTP/1.1\r\nHost: x\r\n")
        slow.append((reader, writer))
    started = time.monotonic()

    async def drip(writer: asyncio.StreamWriter) -> None:
        # A header byte every 0.2 s: each would restart Twisted's idle timer.
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(100):
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)

    async def closed_by_server(reader: asyncio.StreamReader) -> float:
        # Aborted (ConnectionResetError): the server does not wait to flush anything.
        with contextlib.suppress(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 15)
        return time.monotonic() - started

    dripping = [asyncio.create_task(drip(writer)) for _, writer in slow]
    # Meanwhile a charge point connects and is answered at once.
    client = await OCPPClient.open(server.ws_url(new_id()))
    try:
        assert (await asyncio.wait_for(client.boot(), 10)).status == "Accepted"
    finally:
        await client.close()
    closed_after = await asyncio.gather(*(closed_by_server(reader) for reader, _ in slow))
    assert max(closed_after) < 10  # a 2 s deadline, with room for a loaded machine
    await asyncio.gather(*dripping)
    await server.wait_for_log("handshake not done within 2 s (LEVITY_HANDSHAKE_TIMEOUT_SECONDS)")


async def test_a_charge_point_pipelining_large_frames_is_not_read_ahead(start_daphne):
    # Every Authorize hangs in a BEFORE hook, so that nothing the charge point sends is handled.
    server = start_daphne(
        LEVITY_EXTRA_APPS="tests.sample_plugins",
        LEVITY_PLUGINS=json.dumps([{"class": "tests.sample_plugins.plugins.HangingPlugin"}]),
        LEVITY_BEFORE_HOOK_TIMEOUT="60",
        LEVITY_CALL_RATE="0",
        LEVITY_OCPP_LENIENT="true",  # the padding is accepted, and dropped
    )
    process = psutil.Process(server.process.pid)
    rss_before = process.memory_info().rss
    writer = (await RawClient.open(server.port, new_id())).writer
    frame = json.dumps([2, "a", "Authorize", {"idTag": "x", "pad": "x" * 500_000}]).encode()
    sock = writer.get_extra_info("socket")
    raw = socket.socket(fileno=os.dup(sock.fileno()))
    raw.setblocking(False)
    sent, attempted = 0, 200 * 1024 * 1024
    data = RawClient.frame_header(len(frame)) + frame
    offset = 0
    deadline = time.monotonic() + 10
    stalled_since = None
    while sent < attempted and time.monotonic() < deadline:
        try:
            n = raw.send(data[offset:])
            sent += n
            offset = (offset + n) % len(data)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 2:
                break  # the server stopped reading
            await asyncio.sleep(0.01)
    raw.close()
    assert sent < 60 * 1024 * 1024, f"the server read {sent} bytes ahead"
    assert process.memory_info().rss - rss_before < 150 * 1024 * 1024
    # A neighbour is answered all the same.
    client = await OCPPClient.open(server.ws_url(new_id()))
    try:
        assert (await asyncio.wait_for(client.boot(), 10)).status == "Accepted"
    finally:
        await client.close()
    writer.close()
