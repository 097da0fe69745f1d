"""The transport under the consumer: autobahn's debug text is built only when it is logged."""

from __future__ import annotations

import pprint

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import pytest

from chargepoints.transport import DeferredText, defer_autobahn_debug_formatting

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
    assert "\n{attrs}".format(attrs=value) == "\n" + pprint.pformat(config)
    assert CountsRepr.reprs == 2


def test_highlighted_names_and_values_read_as_autobahn_writes_them(deferred_autobahn):
    method = autobahn.websocket.protocol.WebSocketProtocol.sendData
    line = "{func} sent {data_len} bytes".format(
        func=autobahn.twisted.websocket.hltype(method), data_len=autobahn.websocket.protocol.hlval(42)
    )
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
