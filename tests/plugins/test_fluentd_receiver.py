"""The test suite's Fluentd receiver decodes every forward-protocol mode, and acks chunks.

fluent-logger sends Message mode only; Fluentd's own forwarders and other clients
send the batched modes, which the receiver must read as Fluentd does.
"""

from __future__ import annotations

import gzip
import socket

import msgpack
import pytest
from fluent.sender import EventTime, FluentSender

from tests.conftest import eventually
from tests.plugins.fluentd_receiver import FluentdReceiver

pytestmark = pytest.mark.once  # no database at all


@pytest.fixture
def receiver():
    receiver = FluentdReceiver().start()
    yield receiver
    receiver.stop()


def send(receiver: FluentdReceiver, *messages) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", receiver.port))
    sock.sendall(b"".join(msgpack.packb(m) for m in messages))
    return sock


async def test_decodes_what_fluent_logger_sends_with_event_time(receiver):
    sender = FluentSender("app", host="127.0.0.1", port=receiver.port, nanosecond_precision=True)
    sender.emit_with_time("boot", 1_700_000_000.25, {"cp": "CP1"})
    sender.close()

    await eventually(lambda: receiver.events)
    [event] = receiver.events
    assert (event.tag, event.time, event.record, event.mode) == (
        "app.boot",
        1_700_000_000.25,
        {"cp": "CP1"},
        "Message",
    )


async def test_decodes_forward_mode(receiver):
    send(receiver, ["app", [[1, {"n": 1}], [EventTime(2.5), {"n": 2}]]]).close()

    await eventually(lambda: len(receiver.events) == 2)
    assert [(e.time, e.record, e.mode) for e in receiver.events] == [
        (1.0, {"n": 1}, "Forward"),
        (2.5, {"n": 2}, "Forward"),
    ]


async def test_decodes_packed_and_compressed_packed_forward_modes(receiver):
    entries = msgpack.packb([1, {"n": 1}]) + msgpack.packb([2, {"n": 2}])
    send(
        receiver,
        ["app", entries],
        ["app", gzip.compress(entries), {"compressed": "gzip"}],
    ).close()

    await eventually(lambda: len(receiver.events) == 4)
    assert [(e.record["n"], e.mode) for e in receiver.events] == [
        (1, "PackedForward"),
        (2, "PackedForward"),
        (1, "CompressedPackedForward"),
        (2, "CompressedPackedForward"),
    ]


def test_acknowledges_a_chunk_option(receiver):
    sock = send(receiver, ["app", 1, {"n": 1}, {"chunk": "c2lnbmF0dXJl"}])
    sock.settimeout(5)

    assert msgpack.unpackb(sock.recv(1024)) == {"ack": "c2lnbmF0dXJl"}
    sock.close()
