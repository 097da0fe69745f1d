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
- **A message is sent in the loop's next turn** (``levity-tcp:``, levity_site.tcp),
  not after a writability watch on its socket: daphne's TCP endpoints (``-b``/``-p``,
  ``-e tcp:``, ``--fd`` as each of ``--workers`` uses) listen on Levity's TCP endpoint,
  whose connections are Twisted's except in when they send. (TLS and Unix-socket
  endpoints keep Twisted's way.)
- **autobahn's options are set on a connection at once** (``WebSocketProtocol``),
  not one by one.
- **Shutdown ends every session** (``LevityServer``). On SIGTERM daphne cancels each connection's
  application, and the OCPP consumer then ends its session as a disconnect would
  (plugins' ``cleanup()``, the charge point recorded offline). Daphne's own
  ``kill_all_applications`` stops at the first connection without an application
  -- the HTTP request a WebSocket was upgraded from, kept for up to a second --
  so after any recent connect it cancelled nothing (a KeyError in its log).
- **WebSocket keep-alive from Levity's settings.** ``--ping-interval`` and
  ``--ping-timeout`` default to ``LEVITY_WEBSOCKET_PING_INTERVAL`` and
  ``LEVITY_WEBSOCKET_PING_TIMEOUT`` (daphne's own 20 s and 30 s otherwise): a charge
  point that stops answering pings (power cut, lost network) is disconnected and
  recorded offline within interval + timeout + 3 s (daphne checks every 2 s, and the
  timeout may end up to a second late, never early).
- **Several processes on one port.** ``--workers N`` (default ``LEVITY_WORKERS``)
  starts N of these servers on SO_REUSEPORT sockets of one address and supervises
  them (levity_site.workers).
- **What charge point authentication needs** (chargepoints.session.authentication;
  docs/security.md), which daphne 4.2 does not give an application: a WebSocket
  scope's ``extensions`` hold the ASGI ``tls`` extension (with the client
  certificate) on a TLS endpoint and the TCP peer's address; and the protocol
  implements ASGI's ``websocket.http.response`` extension, so that a refused
  upgrade is answered 401 with ``WWW-Authenticate`` instead of daphne's bare 403.
  TLS endpoints with client certificates: ``levity-tls:`` (levity_site.tls); a TLS
  connection reaches daphne once its handshake is done, and one whose handshake
  fails is logged and counted there (``UpgradeFirst``, an ``IHandshakeListener``).
- **autobahn's timeouts end no sooner than they are set to.** A client has
  ``LEVITY_WEBSOCKET_CLOSE_TIMEOUT`` seconds at least to answer the server's close
  frame, where autobahn's 1 s default could drop it after a few milliseconds; the
  ping and handshake timeouts, which could end up to a second early, are a second
  longer (``protocol_limits.whole_timeouts``).
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
import os
import sys
from http import HTTPStatus

import uvloop
from autobahn.websocket.types import ConnectionDeny
from daphne import ws_protocol
from daphne.access import AccessLogGenerator
from daphne.http_protocol import HTTPFactory
from daphne.utils import HEADER_NAME_RE, INVALID_HEADER_VALUE_BYTES
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IHandshakeListener
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from . import protocol_limits, tcp, tls

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


@implementer(IHandshakeListener)
class UpgradeFirst(protocol.Protocol):
    """A connection's first protocol: a WebSocket upgrade goes straight to autobahn.

    Daphne parses every request with Twisted's HTTP server, then re-assembles an
    upgrade request for autobahn to parse again. A charge point's upgrade arrives
    in one read; from it this hands the connection to daphne's WebSocket protocol
    at once. Anything else (HTTP, a request split across reads) goes to daphne's
    HTTP protocol, with the bytes read so far; so does TLS, once its handshake is
    done. A TLS connection lost before that failed its handshake: levity_site.tls
    logs it with OpenSSL's reason.
    """

    timeout = None

    def __init__(self, factory: HTTPFactory, addr):
        self.factory = factory
        self.addr = addr

    def connectionMade(self) -> None:
        protocol_limits.start_handshake_deadline(self.transport, self.factory.reactor)
        if isinstance(self.transport, TLSMemoryBIOProtocol):
            # TLS takes daphne's way once its handshake is done (handshakeCompleted);
            # an address past the failed-handshake throttle costs no handshake.
            if not tls.handshake_allowed(self.transport):
                self.transport.abortConnection()
                return
        elif isinstance(self.transport, ProtocolWrapper):
            # Other wrappers (ALPN, PROXY protocol) take daphne's way.
            self._hand_over(self.factory.build_http_protocol(self.addr))
            return
        if self.factory.timeOut is not None:  # as Twisted's HTTP protocol times out a silent client
            self.timeout = self.factory.reactor.callLater(self.factory.timeOut, self.transport.loseConnection)  # type: ignore[misc, union-attr]  # made: a transport

    def handshakeCompleted(self) -> None:
        """IHandshakeListener: the TLS handshake is done; the connection takes daphne's way."""
        self._hand_over(self.factory.build_http_protocol(self.addr))

    def dataReceived(self, data: bytes) -> None:
        query_string = websocket_upgrade_query(data)
        if query_string is None:
            successor = self.factory.build_http_protocol(self.addr)
        else:
            successor = self.factory.server.ws_factory.buildProtocol(self.addr)
            successor._raw_query_string = query_string  # as daphne's HTTP protocol passes it
        self._hand_over(successor)
        successor.dataReceived(data)

    def connectionLost(self, reason) -> None:  # type: ignore[override]  # Twisted always passes the reason
        self._stop_timeout()
        protocol_limits.handshake_done(self.transport)
        if isinstance(self.transport, TLSMemoryBIOProtocol):
            # Still here: the TLS handshake did not complete (its OpenSSL error is the reason).
            tls.handshake_failed(self.transport, reason)

    def _hand_over(self, successor: protocol.Protocol) -> None:
        self._stop_timeout()
        assert self.transport is not None  # the connection was made
        if isinstance(self.transport, ProtocolWrapper):
            self.transport.wrappedProtocol = successor
        else:
            self.transport.protocol = successor
        successor.makeConnection(self.transport)

    def _stop_timeout(self) -> None:
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()
        self.timeout = None


class WebSocketProtocol(protocol_limits.LimitedWebSocketProtocol, ws_protocol.WebSocketProtocol):
    """Daphne's WebSocket protocol, which takes autobahn's options from its factory in one step.

    autobahn copies each of its 29 options to every new connection one by one, and
    builds a list of them for a debug line; this sets them all at once instead.
    """

    OPTIONS = ws_protocol.WebSocketProtocol.CONFIG_ATTRS
    CONFIG_ATTRS = ()  # what autobahn's _connectionMade() copies: nothing left to copy

    # Identity, as daphne's __hash__ and __eq__ define it, without a Python call each
    # time the server looks a connection up in its dict of connections.
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def _connectionMade(self) -> None:
        own = vars(self)
        for name in self.OPTIONS:
            if name not in own:  # an option set on the connection itself stays
                own[name] = getattr(self.factory, name)  # type: ignore[index]  # an instance's vars() is its __dict__
        super()._connectionMade()

    # --- charge point authentication (chargepoints.session.authentication) -------------

    _denial: tuple[int, list] | None = None
    _denial_headers: list[tuple[str, str]] = []

    def asgi_extensions(self) -> dict:
        """The scope's ``extensions``: what daphne leaves out and Levity's check needs.

        ``tls`` (the ASGI TLS extension) when the connection came through a TLS
        endpoint, with the client certificate it presented and the intermediate CA
        certificates it sent along; ``levity.connection``
        with the TCP peer's address (daphne's ``client`` may be a forwarded one);
        and ``websocket.http.response``, which this protocol implements, so that a
        refused upgrade gets an HTTP status (401) rather than daphne's 403.
        """
        peer = self.transport.getPeer()
        extensions: dict[str, dict] = {
            "websocket.http.response": {},
            "levity.connection": {"peer": [str(getattr(peer, "host", "")), getattr(peer, "port", 0)]},
        }
        if isinstance(self.transport, TLSMemoryBIOProtocol):
            extensions["tls"] = {"client_cert_chain": tls.client_certificate_chain(self.transport)}
        return extensions

    def handle_reply(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "websocket.http.response.start" and self.state == self.STATE_CONNECTING:
            self._denial = (message["status"], list(message.get("headers", ())))
        elif kind == "websocket.http.response.body" and self._denial is not None:
            if not message.get("more_body"):
                self._deny()
        else:
            super().handle_reply(message)

    def _deny(self) -> None:
        """As daphne's serverReject, with the application's status and headers."""
        assert self._denial is not None  # handle_reply stored it
        status, headers = self._denial
        self._denial_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        self.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
        del self.handshake_deferred
        self.server.protocol_disconnected(self)
        self.server.log_action(
            "websocket",
            "rejected",
            {
                "path": self.request.path,
                "client": "{}:{}".format(*self.client_addr) if self.client_addr else None,
            },
        )

    def failHandshake(self, reason: str, code: int = 400, responseHeaders=None) -> None:
        super().failHandshake(reason, code, [*(responseHeaders or ()), *self._denial_headers])


class ExtensionsInScope:
    """Mixed into daphne's Server (imported only in main()): a WebSocket scope carries
    its protocol's ``asgi_extensions()``."""

    def create_application(self, protocol, scope: dict):
        extensions = getattr(protocol, "asgi_extensions", None)
        if extensions is not None:
            scope["extensions"] = {**scope.get("extensions", {}), **extensions()}
        return super().create_application(protocol, scope)  # type: ignore[misc]  # daphne's Server, mixed into


class WebSocketFactory(ws_protocol.WebSocketFactory):
    protocol = WebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(**protocol_limits.close_handshake_options())

    def setProtocolOptions(self, **options) -> None:
        # Daphne's frame and message size options, capped by LEVITY_MAX_FRAME_BYTES.
        if "maxMessagePayloadSize" in options or "maxFramePayloadSize" in options:
            options.update(
                protocol_limits.frame_size_options(
                    options.get("maxMessagePayloadSize", self.maxMessagePayloadSize),  # type: ignore[arg-type]  # autobahn's default is 0
                    options.get("maxFramePayloadSize", self.maxFramePayloadSize),  # type: ignore[arg-type]  # autobahn's default is 0
                )
            )
        super().setProtocolOptions(**protocol_limits.whole_timeouts(options))


class LevityHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory, whose connections start with ``UpgradeFirst``."""

    def buildProtocol(self, addr) -> protocol.Protocol:
        return UpgradeFirst(self, addr)

    def build_http_protocol(self, addr) -> protocol.Protocol:
        http_protocol = super().buildProtocol(addr)
        # Bodies larger than LEVITY_MAX_REQUEST_BODY_BYTES are refused before they are read.
        http_protocol.requestFactory = protocol_limits.body_size_limited(http_protocol.requestFactory)
        return http_protocol


def levity_defaults() -> dict:
    """Daphne options whose defaults are Levity settings (a malformed one stops start-up)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "levity_site.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return {
            "ping_interval": settings.LEVITY_WEBSOCKET_PING_INTERVAL,
            "ping_timeout": settings.LEVITY_WEBSOCKET_PING_TIMEOUT,
            "workers": settings.LEVITY_WORKERS,
        }
    except ImproperlyConfigured as exc:
        raise SystemExit(f"Levity configuration error: {exc}") from None


def command_line() -> type:
    """Daphne's command line, running ``LevityServer``.

    Made on call: daphne.server creates its event loop as it is imported, which must
    come after uvloop's policy is set (``main``).
    """
    import daphne.server
    from daphne import cli

    class LevityServer(ExtensionsInScope, daphne.server.Server):
        """Daphne's server, with Levity's access log, its TCP endpoint (``levity-tcp:`` for
        ``tcp:`` and ``--fd``), a shutdown that ends every session, and what charge point
        authentication needs in the scope (ExtensionsInScope)."""

        def __init__(self, application, endpoints=None, *args, action_logger=None, **kwargs):
            if type(action_logger) is AccessLogGenerator:  # what daphne's command line makes
                action_logger = AccessLog(action_logger.stream)
            endpoints = [tcp.levity_endpoint(str(e)) for e in endpoints or ()]
            super().__init__(application, endpoints, *args, action_logger=action_logger, **kwargs)

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
    cli = command_line()()
    cli.parser.add_argument(
        "--workers",
        type=int,
        help="Start this many server processes on the -b/-p address (levity_site.workers)",
    )
    cli.parser.set_defaults(**levity_defaults())
    args = cli.parser.parse_args(sys.argv[1:])
    if args.workers > 1:
        from levity_site.workers import supervise

        sys.exit(supervise(args.workers, sys.argv[1:], args))
    cli.run(sys.argv[1:])


if __name__ == "__main__":
    main()
