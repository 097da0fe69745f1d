"""Limits the server's Twisted protocols enforce before the application sees a byte.

- **Handshake deadline** (``LEVITY_HANDSHAKE_TIMEOUT_SECONDS``): a connection has
  that long from its accept until its first HTTP request has arrived whole or its
  WebSocket is open. Bytes do not extend it, unlike Twisted's idle timeout, which
  each byte restarts: a client that drips its request head (a slowloris) is cut off.
- **Request bodies** (``LEVITY_MAX_REQUEST_BODY_BYTES``): a request whose declared
  ``Content-Length`` is larger is answered 413 as soon as its head has arrived,
  before any of its body is read; a chunked body is cut off when it grows past it.
- **Back-pressure** (``ReadPause``): a WebSocket connection stops being read while
  its application has ``LEVITY_MAX_QUEUED_FRAMES`` frames waiting, or while the
  answers written to it are not being read (Twisted's write buffer is full).
- **Frame size** (``LEVITY_MAX_FRAME_BYTES``): autobahn closes a connection with
  1009 as soon as a frame's or message's header announces more, before reading it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IPushProducer
from twisted.web.http import Request
from zope.interface import implementer

from levity_site.conf import settings

logger = logging.getLogger("levity.limits")


def _setting(name: str) -> int | float:
    """A limit's setting; 0 (off) under settings without it (bench/'s bare Channels server)."""
    return getattr(settings, name, 0)


def _int_setting(name: str) -> int:
    """A limit's setting that is a count of bytes or frames (``envint`` in the settings)."""
    return getattr(settings, name, 0)


#: Pending handshake deadlines by transport.
_deadlines: dict = {}


def start_handshake_deadline(transport, reactor) -> None:
    """Close ``transport`` if its handshake is not done in ``LEVITY_HANDSHAKE_TIMEOUT_SECONDS``."""
    seconds = _setting("LEVITY_HANDSHAKE_TIMEOUT_SECONDS")
    if seconds > 0 and transport not in _deadlines:
        _deadlines[transport] = reactor.callLater(seconds, _handshake_expired, transport, seconds)


def handshake_done(transport) -> None:
    """The first request arrived whole, or the WebSocket opened (or the connection ended)."""
    call = _deadlines.pop(transport, None)
    if call is not None and call.active():
        call.cancel()


def _handshake_expired(transport, seconds: float) -> None:
    _deadlines.pop(transport, None)
    if getattr(transport, "disconnected", False):
        return
    logger.warning(
        "%s: handshake not done within %g s (LEVITY_HANDSHAKE_TIMEOUT_SECONDS); connection closed",
        _peer(transport),
        seconds,
    )
    transport.abortConnection()


def _peer(transport) -> str:
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:  # a transport without an address (a UNIX socket, a test double)
        return "?"


class _Discarded:
    """Where the body of a refused request goes: nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args) -> int:
        return 0

    def read(self, *args) -> bytes:
        return b""

    def close(self) -> None:
        pass

    closed = True


@functools.cache
def body_size_limited(request_class: type[Request]) -> type[Request]:
    """``request_class`` (daphne's WebRequest) refusing bodies larger than the setting."""

    class BodySizeLimitedRequest(request_class):  # type: ignore[valid-type,misc]  # a base chosen at run time
        _refused = False
        _body_bytes = 0

        def gotLength(self, length: int | None) -> None:
            limit = _int_setting("LEVITY_MAX_REQUEST_BODY_BYTES")
            if limit and length is not None and length > limit:
                self._refuse(length, limit)
                return
            super().gotLength(length)

        def handleContentChunk(self, data: bytes) -> None:
            if self._refused:
                return
            self._body_bytes += len(data)
            limit = _int_setting("LEVITY_MAX_REQUEST_BODY_BYTES")
            if limit and self._body_bytes > limit:  # a chunked body, which declared no length
                self._refuse(None, limit)
                return
            super().handleContentChunk(data)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
            handshake_done(self.channel.transport)
            if not self._refused:
                super().requestReceived(command, path, version)

        def _refuse(self, length: int | None, limit: int) -> None:
            self._refused = True
            self.content = _Discarded()
            transport = self.channel.transport
            logger.warning(
                "%s: request body of %s bytes refused (LEVITY_MAX_REQUEST_BODY_BYTES=%d)",
                _peer(transport),
                length if length is not None else f"more than {limit}",
                limit,
            )
            body = json.dumps(
                {
                    "error": "request_too_large",
                    "detail": f"The request body may be at most {limit} bytes.",
                }
            ).encode()
            transport.write(
                b"HTTP/1.1 413 Content Too Large\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(body), body)
            )
            transport.loseConnection()

    BodySizeLimitedRequest.__name__ = BodySizeLimitedRequest.__qualname__ = (
        f"BodySizeLimited{request_class.__name__}"
    )
    return BodySizeLimitedRequest


@implementer(IPushProducer)
class ReadPause:
    """Stops reading a transport for as long as any reason to is in force.

    Registered as the transport's own producer, so Twisted pauses it when the
    answers written to it pile up unread, and resumes it when they are sent.
    """

    WRITES = "writes"

    def __init__(self, transport) -> None:
        self.transport = transport
        self.reasons: set[str] = set()
        # Another producer registered already: go without the write side.
        with contextlib.suppress(RuntimeError):
            transport.registerProducer(self, True)

    def pause(self, reason: str) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self.transport.resumeProducing()

    # IPushProducer, called by the transport about its write buffer.
    def pauseProducing(self) -> None:
        self.pause(self.WRITES)

    def resumeProducing(self) -> None:
        self.resume(self.WRITES)

    def stopProducing(self) -> None:
        self.reasons.clear()


#: RFC 6455 close codes a server sends: going away, policy violation, internal error.
SERVER_CLOSE_CODES = {1001, 1008, 1011}


if TYPE_CHECKING:
    # The class this mixes into, for the attributes and super() calls it uses.
    from daphne.ws_protocol import WebSocketProtocol as _WebSocketProtocolBase
else:
    _WebSocketProtocolBase = object


class LimitedWebSocketProtocol(_WebSocketProtocolBase):
    """Mixin for daphne's WebSocket protocol: handshake deadline, back-pressure."""

    QUEUE = "queue"
    #: How often a connection paused for its full queue checks whether it has room again.
    RESUME_CHECK_SECONDS = 0.01

    read_pause: ReadPause | None = None
    _resume_check = None
    #: LEVITY_MAX_QUEUED_FRAMES, read once per connection rather than once per frame.
    max_queued_frames: int | float = 0

    def _connectionMade(self) -> None:
        super()._connectionMade()
        self.read_pause = ReadPause(self.transport)
        self.max_queued_frames = _setting("LEVITY_MAX_QUEUED_FRAMES")

    def onOpen(self) -> None:
        handshake_done(self.transport)
        super().onOpen()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        super().onMessage(payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if queue is not None and self._resume_check is None and 0 < self.max_queued_frames <= queue.qsize():
            assert self.read_pause is not None  # set when the connection was made
            self.read_pause.pause(self.QUEUE)
            self._resume_check = _reactor().callLater(self.RESUME_CHECK_SECONDS, self._resume_when_room)

    def _resume_when_room(self) -> None:
        queue = self.application_queue
        if queue.qsize() < self.max_queued_frames:
            self._resume_check = None
            assert self.read_pause is not None  # set when the connection was made
            self.read_pause.resume(self.QUEUE)
        else:
            self._resume_check = _reactor().callLater(self.RESUME_CHECK_SECONDS, self._resume_when_room)

    def handle_reply(self, message: dict) -> None:
        # autobahn's sendClose() lets an application send 1000 and 3000-4999 only; a
        # server also ends sessions with RFC 6455's 1001, 1008 and 1011.
        code = message.get("code")
        if (
            message.get("type") == "websocket.close"
            and code in SERVER_CLOSE_CODES
            and self.state == self.STATE_OPEN
        ):
            self.sendCloseFrame(code=code, isReply=False)
            return
        super().handle_reply(message)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        handshake_done(self.transport)
        if self._resume_check is not None and self._resume_check.active():
            self._resume_check.cancel()
        super().onClose(wasClean, code, reason)


def _reactor():
    from twisted.internet import reactor  # the one daphne installed

    return reactor


def frame_size_options(max_message: int, max_frame: int) -> dict[str, int | bool]:
    """autobahn's size options: daphne's (its command line) capped by ``LEVITY_MAX_FRAME_BYTES``.

    With ``failByDrop`` off, autobahn ends a connection that breaks a limit or the
    protocol with a close frame carrying the code (1009, 1002, 1007) instead of
    dropping it unexplained; what the client still sends is discarded, unread
    into memory, until its close reply or autobahn's close handshake timeout.
    """
    limit = _int_setting("LEVITY_MAX_FRAME_BYTES")

    def capped(value: int) -> int:
        if limit == 0:
            return value
        return limit if value == 0 else min(value, limit)

    return {
        "maxMessagePayloadSize": capped(max_message),
        "maxFramePayloadSize": capped(max_frame),
        "failByDrop": False,
    }


#: autobahn's timeouts (seconds) that run on txaio's batched timer.
BATCHED_TIMEOUTS = ("autoPingTimeout", "closeHandshakeTimeout", "openHandshakeTimeout")


def whole_timeouts(options: dict) -> dict:
    """autobahn's ``options``, with each timeout a second longer, so none ends early.

    autobahn runs these timeouts on txaio's batched timer, which fires on the whole
    second of the clock *before* a call is due (it truncates). A 1 s close handshake
    timeout dropped a client after anywhere between 0 and 1 s, often before its
    answering close frame was in, and the drop lost the close code to both sides; a
    ping timeout of T seconds gave a charge point between T - 1 and T to answer. With
    one second more, each timeout is at least what it is set to, and at most one
    second longer.
    """
    return {
        name: value + 1 if name in BATCHED_TIMEOUTS and value else value for name, value in options.items()
    }


def close_handshake_options() -> dict[str, int]:
    """autobahn's close handshake timeout: how long a client has to answer the server's
    close frame (a replaced session, a broken limit, a shutdown) before its connection
    is dropped."""
    seconds = _int_setting("LEVITY_WEBSOCKET_CLOSE_TIMEOUT")
    return {"closeHandshakeTimeout": seconds} if seconds else {}
