"""``python -m levity_site.server [daphne's options] levity_site.asgi:application``

Daphne, as Levity runs it: every option and default is daphne's, with the changes
below. The speed-ups were measured on bench/'s reconnect storm (bench/results).
Each change that reaches into daphne, Twisted or autobahn beyond their public API
is listed in docs/upstream.md with the upstream change that would make it
unnecessary, and guarded by a test that fails when an upgrade breaks it.

- **uvloop.** Daphne runs Twisted on the asyncio event loop that it creates as it
  is imported; this sets uvloop's event loop policy first, so every connection's
  accept, HTTP upgrade and frames run through uvloop's C callbacks instead of
  asyncio's Python ones (Twisted supports uvloop under its asyncio reactor since
  21.7).
- **A WebSocket upgrade goes straight to autobahn.** Daphne parses every request
  with Twisted's HTTP server, then re-assembles an upgrade request for autobahn
  (its WebSocket layer) to parse again. ``UpgradeFirst`` hands an upgrade that
  arrives whole in one read -- as every charge point's does -- to daphne's
  WebSocket protocol directly, with the same checks of its head; anything else
  takes daphne's way.
- **autobahn's options are set on a connection at once** (``WebSocketProtocol``),
  not one by one.
- **Shutdown ends every session** (``LevityServer``). On SIGTERM daphne cancels each
  connection's application, and the OCPP consumer then ends its session as a
  disconnect would (plugins' ``cleanup()``, the charge point recorded offline).
  Daphne's own ``kill_all_applications`` stops at the first connection without an
  application -- the HTTP request a WebSocket was upgraded from, kept for up to a
  second -- so after any recent connect it cancelled nothing (a KeyError in its log).
- **No WebSocket lines in the access log.** Levity logs each charge point's
  connect and disconnect itself (chargepoints.session.consumer), with its identity and
  close code, through the logging set-up that can forward to Fluentd; daphne's
  ``WSCONNECTING``/``WSCONNECT``/``WSDISCONNECT`` lines said the same again, three
  unbuffered writes per charge point. HTTP requests and refused WebSocket
  handshakes (``WSREJECT``) are still in daphne's access log.
"""

from __future__ import annotations

import asyncio
import logging

import uvloop
from daphne import ws_protocol
from daphne.access import AccessLogGenerator
from daphne.http_protocol import HTTPFactory
from daphne.utils import HEADER_NAME_RE, INVALID_HEADER_VALUE_BYTES
from twisted.internet import defer, protocol
from twisted.protocols.policies import ProtocolWrapper

logger = logging.getLogger("daphne.server")


class AccessLog(AccessLogGenerator):
    """Daphne's access log, without the WebSocket connects and disconnects Levity logs."""

    LOGGED_BY_LEVITY = {
        ("websocket", "connecting"),
        ("websocket", "connected"),
        ("websocket", "disconnected"),
    }

    def __call__(self, protocol: str, action: str, details: dict) -> None:
        if (protocol, action) not in self.LOGGED_BY_LEVITY:
            super().__call__(protocol, action, details)


#: Twisted's bounds on a request's head, which a fast-path request stays within.
MAX_HEAD_BYTES = 16384
MAX_HEADERS = 500


def websocket_upgrade_query(data: bytes) -> bytes | None:
    """The query string of ``data`` if it holds a whole WebSocket upgrade request, else None.

    None also for anything daphne would answer itself (a header it refuses, a body,
    a path that is not ASCII): such a request takes daphne's own way.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD_BYTES:
        return None
    lines = data[:end].split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(lines) > MAX_HEADERS or len(request_line) != 3:
        return None
    method, uri, version = request_line
    if method != b"GET" or version != b"HTTP/1.1" or not uri.isascii():
        return None
    upgrade = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not HEADER_NAME_RE.fullmatch(name):
            return None
        value = value.strip(b" \t")  # as Twisted's parser trims it
        if INVALID_HEADER_VALUE_BYTES.intersection(value):
            return None
        name = name.lower()
        if name == b"upgrade":
            upgrade = value if upgrade is None else upgrade
        elif name in (b"content-length", b"transfer-encoding"):
            return None
    if upgrade is None or upgrade.lower() != b"websocket":
        return None
    return uri.partition(b"?")[2]


class UpgradeFirst(protocol.Protocol):
    """A connection's first protocol: a WebSocket upgrade goes straight to autobahn.

    Daphne parses every request with Twisted's HTTP server, then re-assembles an
    upgrade request for autobahn to parse again. A charge point's upgrade arrives
    in one read; from it this hands the connection to daphne's WebSocket protocol
    at once. Anything else (HTTP, TLS, a request split across reads) goes to
    daphne's HTTP protocol, with the bytes read so far.
    """

    timeout = None

    def __init__(self, factory: HTTPFactory, addr):
        self.factory = factory
        self.addr = addr

    def connectionMade(self) -> None:
        if isinstance(self.transport, ProtocolWrapper):
            # TLS and other wrappers (ALPN, PROXY protocol) take daphne's way.
            self._hand_over(self.factory.build_http_protocol(self.addr))
            return
        if self.factory.timeOut is not None:  # as Twisted's HTTP protocol times out a silent client
            self.timeout = self.factory.reactor.callLater(self.factory.timeOut, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        query_string = websocket_upgrade_query(data)
        if query_string is None:
            successor = self.factory.build_http_protocol(self.addr)
        else:
            successor = self.factory.server.ws_factory.buildProtocol(self.addr)
            successor._raw_query_string = query_string  # as daphne's HTTP protocol passes it
        self._hand_over(successor)
        successor.dataReceived(data)

    def connectionLost(self, reason) -> None:
        self._stop_timeout()

    def _hand_over(self, successor: protocol.Protocol) -> None:
        self._stop_timeout()
        if isinstance(self.transport, ProtocolWrapper):
            self.transport.wrappedProtocol = successor
        else:
            self.transport.protocol = successor
        successor.makeConnection(self.transport)

    def _stop_timeout(self) -> None:
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()
        self.timeout = None


class WebSocketProtocol(ws_protocol.WebSocketProtocol):
    """Daphne's WebSocket protocol, which takes autobahn's options from its factory in one step.

    autobahn copies each of its 29 options to every new connection one by one, and
    builds a list of them for a debug line; this sets them all at once instead.
    """

    OPTIONS = ws_protocol.WebSocketProtocol.CONFIG_ATTRS
    CONFIG_ATTRS = ()  # what autobahn's _connectionMade() copies: nothing left to copy

    def _connectionMade(self) -> None:
        own = vars(self)
        for name in self.OPTIONS:
            if name not in own:  # an option set on the connection itself stays
                own[name] = getattr(self.factory, name)
        super()._connectionMade()


class WebSocketFactory(ws_protocol.WebSocketFactory):
    protocol = WebSocketProtocol


class LevityHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory, whose connections start with ``UpgradeFirst``."""

    def buildProtocol(self, addr) -> protocol.Protocol:
        return UpgradeFirst(self, addr)

    def build_http_protocol(self, addr) -> protocol.Protocol:
        return super().buildProtocol(addr)


def command_line() -> type:
    """Daphne's command line, running ``LevityServer``.

    Made on call: daphne.server creates its event loop as it is imported, which must
    come after uvloop's policy is set (``main``).
    """
    import daphne.server
    from daphne import cli

    class LevityServer(daphne.server.Server):
        """Daphne's server, with Levity's access log and a shutdown that ends every session."""

        def __init__(self, *args, action_logger=None, **kwargs):
            if type(action_logger) is AccessLogGenerator:  # what daphne's command line makes
                action_logger = AccessLog(action_logger.stream)
            super().__init__(*args, action_logger=action_logger, **kwargs)

        def kill_all_applications(self) -> defer.Deferred:
            """Daphne's, skipping connections without an application (an upgraded HTTP request)."""
            pending = [
                details["application_instance"]
                for details in self.connections.values()
                if "application_instance" in details and not details["application_instance"].done()
            ]
            for application_instance in pending:
                application_instance.cancel()
            logger.info("Killed %i pending application instances", len(pending))
            # Twisted waits for them before the reactor stops.
            waiting = defer.Deferred.fromFuture(asyncio.gather(*pending, return_exceptions=True))
            waiting.addErrback(lambda failure: None)
            return waiting

    class LevityCommandLine(cli.CommandLineInterface):
        server_class = LevityServer

    return LevityCommandLine


def main() -> None:
    # Before daphne.server is imported: it creates its event loop at import time.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    import daphne.server

    # The two factories daphne's Server.run() builds by these module-level names
    # (docs/upstream.md).
    daphne.server.HTTPFactory = LevityHTTPFactory
    daphne.server.WebSocketFactory = WebSocketFactory
    command_line().entrypoint()


if __name__ == "__main__":
    main()
