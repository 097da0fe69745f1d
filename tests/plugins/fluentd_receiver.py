"""A Fluentd forward-protocol (v1) receiver for tests: msgpack over TCP on 127.0.0.1.

It decodes the three event modes of the protocol: Message ``[tag, time, record,
option?]`` (what fluent-logger sends, one per record, several concatenated in one
write when it sends what it buffered), Forward ``[tag, [[time, record], ...],
option?]`` and PackedForward ``[tag, <msgpack stream of [time, record]>, option?]``
(also gzip-compressed, option ``compressed: "gzip"``). Times are integers or the
EventTime extension (type 0: big-endian seconds and nanoseconds). When the option
carries a ``chunk`` id the receiver acknowledges it with ``{"ack": chunk}``.

``stall=True`` makes a receiver that accepts connections but never reads from
them, with a small receive buffer, as a hung Fluentd would.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass
from typing import Any

import msgpack

from tests.conftest import eventually, free_port


@dataclass
class Event:
    tag: str
    time: float
    record: dict[str, Any]
    mode: str


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        seconds, nanoseconds = struct.unpack(">II", data)
        return seconds + nanoseconds / 1e9
    return msgpack.ExtType(code, data)


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, ext_hook=_ext_hook, strict_map_key=False)


def decode(message: list) -> tuple[list[Event], dict | None]:
    """The events and the option of one forward-protocol message."""
    if not isinstance(message, (list, tuple)) or len(message) < 2:
        raise ValueError(f"not a forward-protocol message: {message!r}")
    tag, second = message[0], message[1]
    if isinstance(second, (int, float)):
        option = message[3] if len(message) > 3 else None
        return [Event(tag, float(second), message[2], "Message")], option
    option = message[2] if len(message) > 2 else None
    if isinstance(second, (list, tuple)):
        return [Event(tag, float(t), record, "Forward") for t, record in second], option
    if isinstance(second, (bytes, str)):
        packed = second.encode("latin-1") if isinstance(second, str) else second
        mode = "PackedForward"
        if option and option.get("compressed") == "gzip":
            packed, mode = gzip.decompress(packed), "CompressedPackedForward"
        entries = _unpacker()
        entries.feed(packed)
        return [Event(tag, float(t), record, mode) for t, record in entries], option
    raise ValueError(f"unknown event mode: {message!r}")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        receiver = self.server.receiver
        receiver._opened(self.request)
        try:
            if receiver.stall:
                receiver._stopping.wait()
                return
            unpacker = _unpacker()
            while True:
                try:
                    data = self.request.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                unpacker.feed(data)
                for message in unpacker:
                    events, option = decode(message)
                    receiver._received(events)
                    if option and "chunk" in option:
                        self.request.sendall(msgpack.packb({"ack": option["chunk"]}))
        finally:
            receiver._closed(self.request)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, receiver: FluentdReceiver):
        self.receiver = receiver
        super().__init__(("127.0.0.1", receiver.port), _Handler, bind_and_activate=False)
        if receiver.stall:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.server_bind()
        self.server_activate()


class FluentdReceiver:
    def __init__(self, port: int | None = None, *, stall: bool = False):
        self.port = port or free_port()
        self.stall = stall
        self.events: list[Event] = []
        self.connections_accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FluentdReceiver:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections (as a Fluentd going down)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._server = None

    # --- bookkeeping (handler threads) -----------------------------------------------

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections_accepted += 1
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _received(self, events: list[Event]) -> None:
        with self._lock:
            self.events.extend(events)
            self._lock.notify_all()

    # --- assertions helpers ---------------------------------------------------------

    def matching(self, tag: str | None = None, cp: str | None = None) -> list[Event]:
        with self._lock:
            return [
                e
                for e in self.events
                if (tag is None or e.tag == tag) and (cp is None or e.record.get("cp") == cp)
            ]

    async def wait_for(
        self, tag: str | None = None, cp: str | None = None, count: int = 1, timeout: float = 10
    ) -> list[Event]:
        """The events with this tag (and charge point), once there are ``count`` of them."""

        def received() -> list[Event]:
            found = self.matching(tag, cp)
            assert len(found) >= count, (
                f"{len(found)} of {count} {tag or ''} records for {cp}; "
                f"received tags: {sorted({e.tag for e in self.events})}"
            )
            return found

        return await eventually(received, timeout=timeout, interval=0.02)
