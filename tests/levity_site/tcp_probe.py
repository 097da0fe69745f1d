"""A Twisted server on ``levity-tcp:`` that reports when its connections waited for writability.

    python tests/levity_site/tcp_probe.py [ENDPOINT]   # prints its port, then serves until killed

ENDPOINT is a ``levity-tcp:`` string (by default ``levity-tcp:port=0:interface=127.0.0.1``).

Run by test_tcp.py as Levity's server runs Twisted: on the asyncio reactor over uvloop.
Each line a client sends is a request:

- ``echo <text>``: answers ``<text>``;
- ``big <n>``: answers n bytes of ``x``;
- ``bye``: answers ``bye`` and closes the connection;
- ``watched``: answers how many times Twisted watched this connection for writability.
"""

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
from twisted.internet import asyncioreactor  # noqa: E402

asyncioreactor.install(asyncio.new_event_loop())
from twisted.internet import protocol, reactor  # noqa: E402
from twisted.internet.endpoints import serverFromString  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project: its twisted/plugins

asyncio_reactor: Any = reactor  # Twisted types the installed reactor as a module
watched: Counter = Counter()
add_writer = asyncio_reactor.addWriter


def counting_add_writer(writer) -> None:
    watched[writer] += 1
    add_writer(writer)


asyncio_reactor.addWriter = counting_add_writer


class Probe(LineReceiver):
    delimiter = b"\n"
    transport: Any  # a levity_site.tcp.Connection once connected

    def lineReceived(self, line: bytes) -> None:
        command, _, argument = line.partition(b" ")
        if command == b"echo":
            self.sendLine(argument)
        elif command == b"big":
            self.transport.write(b"x" * int(argument))
        elif command == b"bye":
            self.sendLine(b"bye")
            self.transport.loseConnection()
        elif command == b"watched":
            self.sendLine(b"%d %s" % (watched[self.transport], type(self.transport).__qualname__.encode()))


def listening(port) -> None:
    print(port.getHost().port, flush=True)


endpoint = sys.argv[1] if len(sys.argv) > 1 else "levity-tcp:port=0:interface=127.0.0.1"
serverFromString(asyncio_reactor, endpoint).listen(protocol.Factory.forProtocol(Probe)).addCallback(listening)
asyncio_reactor.run()
