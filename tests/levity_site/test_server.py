"""levity_site.server: daphne's command line, on uvloop, with WebSocket upgrades taken directly."""

from __future__ import annotations

import asyncio
import io
import json
import sys

import httpx
import pytest
import websockets

from bench.processes import ServerProcess, free_port
from levity_site.server import AccessLog, websocket_upgrade_query
from tests.conftest import PROJECT_DIR

UPGRADE = (
    b"GET /ocpp/CP-1?token=abc HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: ocpp1.6\r\n"
    b"\r\n"
)


@pytest.fixture
def serve(tmp_path):
    servers: list[ServerProcess] = []

    def start(*module_and_options: str) -> ServerProcess:
        port = free_port()
        argv = [sys.executable, "-m", *module_and_options, "-b", "127.0.0.1", "-p", str(port)]
        server = ServerProcess(
            module_and_options[0],
            [*argv, "tests.levity_site.event_loop_app:application"],
            port,
            tmp_path / f"server-{port}.log",
            cwd=PROJECT_DIR,
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.once
def test_levity_server_runs_the_application_on_uvloop(serve):
    server = serve("levity_site.server")
    assert httpx.get(f"http://127.0.0.1:{server.port}/").text == "uvloop.Loop"


@pytest.mark.once
def test_plain_daphne_runs_it_on_asyncios_loop(serve):
    """The comparison that keeps the test above honest: daphne alone does not use uvloop."""
    server = serve("daphne")
    answer = httpx.get(f"http://127.0.0.1:{server.port}/").text
    assert answer == "asyncio.unix_events._UnixSelectorEventLoop"


@pytest.mark.once
def test_levity_server_exits_cleanly_on_sigterm(serve):
    server = serve("levity_site.server")
    # Once it answers, it runs (its port opens a moment before its signal handlers are set).
    assert httpx.get(f"http://127.0.0.1:{server.port}/").status_code == 200
    server.process.terminate()
    assert server.process.wait(10) == 0
    assert "Traceback" not in server.log()


@pytest.mark.django_db(transaction=True)
async def test_sigterm_just_after_a_charge_point_connects_ends_its_session(start_daphne, connect, cp_id):
    server = start_daphne()
    client = await connect(cp_id, server=server)
    await client.boot()

    server.stop()  # within a second of the upgrade, whose HTTP request daphne still lists

    assert server.process.returncode == 0
    log = server.log()
    assert f"{cp_id} disconnected (code 1001)" in log  # the consumer ended the session
    assert "KeyError" not in log


@pytest.mark.django_db(transaction=True)
async def test_access_log_keeps_http_requests_and_leaves_charge_point_sessions_to_levity(
    daphne_server, connect, cp_id
):
    client = await connect(cp_id)
    await client.close()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{daphne_server.http_url}/admin/login/")).status_code == 200
    log = await daphne_server.wait_for_log(f"{cp_id} disconnected (code ")
    log = await daphne_server.wait_for_log('"GET /admin/login/" 200')
    assert f"{cp_id} connected from 127.0.0.1:" in log
    assert f"/ocpp/{cp_id}" not in log  # no WSCONNECTING, WSCONNECT or WSDISCONNECT line


@pytest.mark.once
def test_access_log_keeps_refused_websocket_handshakes():
    lines = io.StringIO()
    access_log = AccessLog(lines)
    details = {"client": "127.0.0.1:5000", "path": "/ocpp/CP-1"}
    for action in ("connecting", "connected", "disconnected", "rejected"):
        access_log("websocket", action, details)
    access_log("http", "complete", {**details, "method": "GET", "status": 200, "size": 12})
    assert [line.split('"')[1] for line in lines.getvalue().splitlines()] == [
        "WSREJECT /ocpp/CP-1",
        "GET /ocpp/CP-1",
    ]


# --- WebSocket upgrades ----------------------------------------------------------


@pytest.mark.once
def test_a_whole_upgrade_request_is_recognised_with_its_query_string():
    assert websocket_upgrade_query(UPGRADE) == b"token=abc"
    assert websocket_upgrade_query(UPGRADE.replace(b"?token=abc", b"")) == b""


@pytest.mark.once
@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(UPGRADE[:-2], id="head not complete"),
        pytest.param(UPGRADE.replace(b"GET ", b"POST "), id="not GET"),
        pytest.param(UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"), id="not HTTP/1.1"),
        pytest.param(UPGRADE.replace(b"Upgrade: websocket\r\n", b""), id="no Upgrade header"),
        pytest.param(UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"), id="another upgrade"),
        pytest.param(UPGRADE.replace(b"Host:", b"Ho(st:"), id="a header name daphne refuses"),
        pytest.param(UPGRADE.replace(b"127.0.0.1", b"127.0\x0b.0.1"), id="a header value daphne refuses"),
        pytest.param(UPGRADE.replace(b"Host:", b"Content-Length: 0\r\nHost:"), id="a body"),
        pytest.param(UPGRADE.replace(b"/ocpp/CP-1", "/ocpp/CP-é".encode()), id="a path not ASCII"),
    ],
)
def test_anything_else_is_left_to_daphne(request_bytes):
    assert websocket_upgrade_query(request_bytes) is None


async def _scope_seen_over(port: int, chunks: list[bytes]) -> tuple[bytes, dict]:
    """The server's answer head, and the scope the application saw, for an upgrade sent in ``chunks``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)  # separate reads on the server
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            return head, {}
        frame = await asyncio.wait_for(reader.read(2), 10)
        length = frame[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        return head, json.loads(await reader.readexactly(length))
    finally:
        writer.close()


@pytest.mark.once
@pytest.mark.parametrize("server_module", ["levity_site.server", "daphne"])
async def test_an_upgrade_in_one_read_gives_the_application_the_scope_daphne_gives(serve, server_module):
    server = serve(server_module)
    head, seen = await _scope_seen_over(server.port, [UPGRADE])
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert seen["path"] == "/ocpp/CP-1"
    assert seen["query_string"] == "token=abc"
    assert seen["subprotocols"] == ["ocpp1.6"]
    assert seen["headers"]["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.once
async def test_an_upgrade_in_one_read_takes_the_fast_path_past_daphnes_http_parser(serve):
    server = serve("levity_site.server")
    _, seen = await _scope_seen_over(server.port, [UPGRADE])
    assert seen["requests_parsed_by_daphne"] == 0


@pytest.mark.once
async def test_an_upgrade_split_across_reads_takes_daphnes_way(serve):
    server = serve("levity_site.server")
    head, seen = await _scope_seen_over(server.port, [UPGRADE[:40], UPGRADE[40:]])
    assert head.startswith(b"HTTP/1.1 101")
    assert seen["query_string"] == "token=abc"
    assert seen["requests_parsed_by_daphne"] == 1


@pytest.mark.once
async def test_an_upgrade_with_a_header_daphne_refuses_gets_its_400(serve):
    server = serve("levity_site.server")
    head, _ = await _scope_seen_over(server.port, [UPGRADE.replace(b"Host:", b"Ho(st:")])
    assert head.startswith(b"HTTP/1.1 400")


@pytest.mark.once
async def test_websocket_clients_and_http_requests_share_the_port(serve):
    server = serve("levity_site.server")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ocpp/CP-2", subprotocols=["ocpp1.6"]) as ws:
        assert json.loads(await ws.recv())["path"] == "/ocpp/CP-2"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{server.port}/")).text == "uvloop.Loop"


@pytest.mark.once
async def test_more_than_the_socket_takes_at_once_arrives_whole_and_in_order(serve):
    server = serve("levity_site.server")
    size, count = 1_000_000, 16  # several times what a loopback socket buffers
    url = f"ws://127.0.0.1:{server.port}/?size={size}&count={count}"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # the scope
        for _ in range(2):
            await ws.send("again")
            for _ in range(count):
                assert await asyncio.wait_for(ws.recv(), 30) == "x" * size


@pytest.mark.once
async def test_daphnes_websocket_options_apply_to_each_connection(serve):
    """daphne limits an incoming message to 1 MiB (autobahn alone has no limit)."""
    server = serve("levity_site.server")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed):  # dropped, not waiting for more
            await asyncio.wait_for(ws.recv(), 10)
