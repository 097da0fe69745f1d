"""Daphne's TCP endpoint for charge points: ``levity-tcp:`` endpoint strings.

Levity's server (levity_site.server) listens on ``levity-tcp:`` wherever daphne would
listen on ``tcp:`` (``-b``/``-p``, ``-e tcp:...``) or on an inherited TCP socket
(``--fd``, as each of ``--workers`` does); the options are those of ``tcp:``, or
``fileno`` for a listening IPv4 socket:

    python -m levity_site.server -e levity-tcp:port=9000:interface=127.0.0.1:backlog=1024 \\
        levity_site.asgi:application

Its connections are Twisted's, except in when they send (``Connection``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket

from twisted.internet import defer, fdesc, tcp
from twisted.internet.interfaces import IStreamServerEndpoint
from zope.interface import implementer

logger = logging.getLogger("daphne.server")


class Connection(tcp.Server):
    """Twisted's server-side TCP connection, sending what it is given in the loop's next turn.

    Twisted asks the event loop to watch a socket for writability on every write,
    sends once the loop reports it, and stops the watch again: two changes to the
    loop's epoll set and one more loop turn per message, although a socket nearly
    always takes a small message at once. This sends in the loop's next turn instead
    (the writes made meanwhile go out together, as before), with Twisted's own
    ``doWrite()``; only what the socket did not take, a lost connection, or a close
    waits for writability in Twisted's usual way, so that the reactor handles them.

    It relies on ``doWrite()`` calling ``stopWriting()`` once all is sent, which is
    how Twisted stops the watch (guarded by tests/levity_site/test_tcp.py).
    """

    _send_soon: asyncio.Handle | None = None
    _watched = False  # Twisted's writability watch is on
    _all_sent = False

    def startWriting(self) -> None:
        if self._watched or self._send_soon is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a running event loop: Twisted's way
            self._watch()
            return
        self._send_soon = loop.call_soon(self._send)

    def stopWriting(self) -> None:
        self._all_sent = True
        self._watched = False
        super().stopWriting()

    def connectionLost(self, reason) -> None:
        if self._send_soon is not None:
            self._send_soon.cancel()
            self._send_soon = None
        super().connectionLost(reason)

    def _send(self) -> None:
        self._send_soon = None
        self._all_sent = False
        try:
            lost = self.doWrite()
        except Exception:
            # The reactor calls doWrite() again and ends the connection as it does
            # for any failed write.
            logger.exception("Sending to %s failed", self.getPeer())
            lost = True
        if lost is not None or not self._all_sent:
            self._watch()

    def _watch(self) -> None:
        self._watched = True
        super().startWriting()


class Port(tcp.Port):
    """Twisted's TCP port, whose connections are ``Connection``."""

    transport = Connection


@implementer(IStreamServerEndpoint)
class ServerEndpoint:
    """``levity-tcp:port=...``: Twisted's ``tcp:`` server endpoint, listening on a ``Port``."""

    def __init__(self, reactor, port: int, backlog: int = 50, interface: str = "") -> None:
        self.reactor = reactor
        self.port = port
        self.backlog = backlog
        self.interface = interface

    def listen(self, factory) -> defer.Deferred:
        return defer.execute(self._listen, factory)

    def _listen(self, factory) -> Port:
        port = Port(self.port, factory, self.backlog, self.interface, self.reactor)
        port.startListening()
        return port


@implementer(IStreamServerEndpoint)
class AdoptedServerEndpoint:
    """``levity-tcp:fileno=...``: Twisted's ``fd:`` server endpoint for a listening IPv4
    socket, listening on a ``Port``."""

    def __init__(self, reactor, fileno: int) -> None:
        self.reactor = reactor
        self.fileno = fileno

    def listen(self, factory) -> defer.Deferred:
        return defer.execute(self._listen, factory)

    def _listen(self, factory) -> Port:
        # What Twisted's reactor.adoptStreamPort() does, with our Port (docs/upstream.md).
        fdesc.setNonBlocking(self.fileno)
        port = Port._fromListeningDescriptor(self.reactor, self.fileno, socket.AF_INET, factory)
        port.startListening()
        os.close(self.fileno)  # the port listens on a duplicate, as with Twisted's fd: endpoint
        return port


def server_endpoint(
    reactor, port: str | None = None, interface: str = "", backlog: str = "50", fileno: str | None = None
) -> ServerEndpoint | AdoptedServerEndpoint:
    """The endpoint of a ``levity-tcp:`` string: with either ``port`` or ``fileno``."""
    if port is not None and fileno is None:
        return ServerEndpoint(reactor, int(port), backlog=int(backlog), interface=interface)
    if fileno is not None and port is None:
        return AdoptedServerEndpoint(reactor, int(fileno))
    raise ValueError("levity-tcp: needs either port= or fileno=")


def levity_endpoint(description: str) -> str:
    """``description`` with a ``tcp:`` endpoint, or daphne's ``fd:fileno=N`` (``--fd``),
    served as ``levity-tcp:``; any other unchanged."""
    if description.startswith("tcp:"):
        return "levity-" + description
    if re.fullmatch(r"fd:fileno=\d+", description):
        return "levity-tcp:" + description.removeprefix("fd:")
    return description
