"""A WebSocket consumer base without the per-message costs of Channels that Levity does not need.

Measured with bench/ (py-spy on daphne under load): a stock ``AsyncWebsocketConsumer``
spends, for every frame it receives,

- a hop to the sync thread: Channels 4.3's ``dispatch()`` awaits
  ``aclose_old_connections()`` first. The OCPP session's database work already runs
  through ``database_sync_to_async``, which closes stale connections around each
  use, so this hop only costs a thread round trip and queues every frame (even a
  Heartbeat, which touches no database) behind the database thread;
- a new task and an ``asyncio.wait()``: ``await_many_dispatch`` wraps each receive
  so that it can listen to a channel layer at the same time. Without a channel
  layer there is nothing else to listen to, and the wait also keeps one more pending
  task per connection.

``LeanWebsocketConsumer`` keeps Channels' behaviour (handlers by message type,
``StopConsumer``, a channel layer when one is used) and drops those two costs.
"""

from __future__ import annotations

from typing import Any

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
