"""The transport under the consumer: Channels' per-frame costs dropped, and autobahn's
debug text built only when it is logged."""

from __future__ import annotations

import ast
import inspect
import pprint

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import channels.consumer
import channels.generic.websocket
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from chargepoints.session.transport import (
    _DEBUG_TEXT,
    DeferredText,
    LeanWebsocketConsumer,
    defer_autobahn_debug_formatting,
)

pytestmark = pytest.mark.once  # no database at all

PATCHED = [
    (autobahn.websocket.protocol, "pformat"),
    (autobahn.websocket.protocol, "hltype"),
    (autobahn.websocket.protocol, "hlval"),
    (autobahn.twisted.websocket, "hltype"),
    (autobahn.twisted.websocket, "hlval"),
    (autobahn.websocket.protocol.Timings, "__str__"),
]


class CountsRepr:
    reprs = 0

    def __repr__(self) -> str:
        CountsRepr.reprs += 1
        return "<counted>"


@pytest.fixture
def deferred_autobahn(monkeypatch):
    for owner, name in PATCHED:
        monkeypatch.setattr(owner, name, getattr(owner, name))
    defer_autobahn_debug_formatting()


def test_a_debug_value_is_not_formatted_until_the_line_is(deferred_autobahn):
    CountsRepr.reprs = 0
    config = [("openHandshakeTimeout", CountsRepr(), "Factory")]
    value = autobahn.websocket.protocol.pformat(config)
    assert CountsRepr.reprs == 0
    assert f"\n{value}" == "\n" + pprint.pformat(config)
    assert CountsRepr.reprs == 2


def test_highlighted_names_and_values_read_as_autobahn_writes_them(deferred_autobahn):
    method = autobahn.websocket.protocol.WebSocketProtocol.sendData
    line = f"{autobahn.twisted.websocket.hltype(method)} sent {autobahn.websocket.protocol.hlval(42)} bytes"
    assert line == f"{autobahn.util.hltype(method)} sent {autobahn.util.hlval(42)} bytes"


def test_deferring_twice_still_gives_text(deferred_autobahn):
    defer_autobahn_debug_formatting()
    assert str(autobahn.twisted.websocket.hlval(7)) == autobahn.util.hlval(7)


def test_a_deferred_text_formats_with_a_spec():
    value = {"b": list(range(40)), "a": 1}
    assert str(DeferredText(pprint.pformat, value)) == pprint.pformat(value)
    assert f"{DeferredText(str, 7):>3}" == "  7"


def test_timings_still_print_as_text(deferred_autobahn):
    timings = autobahn.websocket.protocol.Timings()
    timings.track("onOpen")
    assert str(timings) == pprint.pformat(timings._timings)
    assert "onOpen" in str(timings)


LOG_METHODS = {"trace", "debug", "info", "warn", "warning", "error", "critical", "failure"}


def uses_outside_log_arguments(name: str, source: str) -> list[str]:
    """Where module ``name`` uses a name that defer_autobahn_debug_formatting replaces
    other than inside the arguments of a ``....log.<level>(...)`` call, or ``Timings.__str__``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in _DEBUG_TEXT and isinstance(node.ctx, ast.Load)):
            continue
        ancestor: ast.AST
        function: list[str]
        ancestor, in_log_call, function = node, False, []
        while ancestor in parents:
            ancestor = parents[ancestor]
            if (
                isinstance(ancestor, ast.Call)
                and isinstance(ancestor.func, ast.Attribute)
                and ancestor.func.attr in LOG_METHODS
                and isinstance(ancestor.func.value, ast.Attribute)
                and ancestor.func.value.attr == "log"
            ):
                in_log_call = True
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                function.insert(0, ancestor.name)
        if not in_log_call and function[-2:] != ["Timings", "__str__"]:
            found.append(f"{name}:{node.lineno} {node.id} in {'.'.join(function) or 'the module'}")
    return found


@pytest.mark.parametrize("module", [autobahn.websocket.protocol, autobahn.twisted.websocket])
def test_the_installed_autobahn_uses_the_replaced_names_only_for_log_arguments(module):
    """The assumption defer_autobahn_debug_formatting rests on (docs/upstream.md)."""
    assert uses_outside_log_arguments(module.__name__, inspect.getsource(module)) == []


def test_the_guard_above_finds_a_use_outside_a_log_call():
    source = "def f(self):\n    self.log.debug('{x}', x=hltype(f))\n    return pformat(self)\n"
    assert uses_outside_log_arguments("sample", source) == ["sample:3 pformat in f"]


# --- LeanWebsocketConsumer ------------------------------------------------------


class EchoConsumer(LeanWebsocketConsumer):
    disconnected_with: list[int] = []

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data.upper())

    async def disconnect(self, code):
        self.disconnected_with.append(code)


@pytest.fixture
def sync_thread_hops(monkeypatch) -> list[str]:
    """Each time Channels would hop to the sync thread to close old database connections."""
    hops: list[str] = []

    async def aclose_old_connections():
        hops.append("hop")

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", aclose_old_connections)
    monkeypatch.setattr(channels.generic.websocket, "aclose_old_connections", aclose_old_connections)
    return hops


async def test_lean_consumer_connects_answers_and_disconnects_without_a_sync_thread_hop(
    sync_thread_hops,
):
    EchoConsumer.disconnected_with = []
    communicator = WebsocketCommunicator(EchoConsumer.as_asgi(), "/echo")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="heartbeat")
    assert await communicator.receive_from() == "HEARTBEAT"
    await communicator.disconnect(code=1001)
    assert EchoConsumer.disconnected_with == [1001]
    assert sync_thread_hops == []


async def test_a_stock_consumer_hops_for_every_frame_and_the_disconnect(sync_thread_hops):
    """The comparison that keeps the test above honest."""

    class StockEcho(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data=text_data)

    communicator = WebsocketCommunicator(StockEcho.as_asgi(), "/echo")
    await communicator.connect()
    await communicator.send_to(text_data="x")
    await communicator.receive_from()
    await communicator.disconnect()
    assert len(sync_thread_hops) == 4  # connect, frame, disconnect message, disconnect
