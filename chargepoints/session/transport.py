"""A WebSocket consumer base without the per-message costs of Channels that Levity does not need.

Measured with bench/ (py-spy on daphne under load): a stock ``AsyncWebsocketConsumer``
spends, for every frame it receives,

- a hop to the sync thread: Channels 4.3's ``dispatch()`` awaits
  ``aclose_old_connections()`` first (and ``websocket_disconnect()`` once more).
  The OCPP session's database work runs on a thread of its own
  (chargepoints.session.writer), which closes stale connections around each batch,
  so this hop only costs a thread round trip and queues every frame (even a
  Heartbeat, which touches no database) behind asgiref's shared thread;
- a new task and an ``asyncio.wait()``: ``await_many_dispatch`` wraps each receive
  so that it can listen to a channel layer at the same time. Without a channel
  layer there is nothing else to listen to, and the wait also keeps one more pending
  task per connection.

``LeanWebsocketConsumer`` keeps Channels' behaviour (handlers by message type,
``StopConsumer``, a channel layer when one is used) and drops those two costs.

Under it, autobahn (daphne's WebSocket layer) builds the arguments of its debug log
lines whether or not they are ever written: it pretty-prints its configuration on
every new connection and colours a method name and the peer for every frame
received or sent (bench/results/measurements.md). ``defer_autobahn_debug_formatting``
makes that text be built only when a debug line is written.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable
from functools import partial
from typing import Any

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer


class LeanWebsocketConsumer(AsyncWebsocketConsumer):
    """Without a channel layer (``channel_layer_alias`` naming none), a plain receive loop."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if get_channel_layer(self.channel_layer_alias) is not None:
            await super().__call__(scope, receive, send)
            return
        # As AsyncConsumer.__call__ with no channel layer, without await_many_dispatch.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict) -> None:
        # As AsyncConsumer.dispatch, minus the aclose_old_connections() hop (see above).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict) -> None:
        # As AsyncWebsocketConsumer's, minus the same hop: a fleet that drops at once
        # would queue a thread round trip per charge point behind asgiref's shared thread.
        if self.groups:
            await super().websocket_disconnect(message)
            return
        await self.disconnect(message["code"])
        raise StopConsumer()


class DeferredText(partial):
    """``function(*args)``, called only when the log line holding it is formatted.

    A ``functools.partial``, so that making one runs no Python code: autobahn makes
    several for each frame and logs almost none of them.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return self()

    def __format__(self, spec: str) -> str:
        return format(self(), spec)


#: What autobahn's two WebSocket modules call to build debug log arguments.
_DEBUG_TEXT: dict[str, Callable[..., str]] = {
    "pformat": pprint.pformat,
    "hltype": autobahn.util.hltype,
    "hlval": autobahn.util.hlval,
}


def _timings_text(timings: autobahn.websocket.protocol.Timings) -> str:
    return pprint.pformat(timings._timings)


def defer_autobahn_debug_formatting() -> None:
    """Once per server process: autobahn builds its debug text only when it logs it.

    In ``autobahn.websocket.protocol`` and ``autobahn.twisted.websocket`` these names
    are used only for log arguments, apart from ``Timings.__str__``, which must still
    return text.
    """
    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        for name, function in _DEBUG_TEXT.items():
            if hasattr(module, name):
                setattr(module, name, partial(DeferredText, function))
    autobahn.websocket.protocol.Timings.__str__ = _timings_text  # type: ignore[method-assign]  # the patch itself
