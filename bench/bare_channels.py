"""Baseline (b): a bare Channels consumer on daphne answering each CALL with a canned CALLRESULT.

No validation, no storage, no database: the transport's own ceiling (daphne,
autobahn, Channels' consumer dispatch). ``application`` is the stock
``AsyncWebsocketConsumer``, as anyone would write it; Channels 4.3 runs
``aclose_old_connections()`` (a hop to the sync thread) before every message it
dispatches. ``application_no_hop`` is the same consumer without that hop, reported
beside it so that the transport's cost and that hop's cost can be told apart.

    python -m levity_site.server -e tcp:port=9200:interface=127.0.0.1:backlog=1024 \
        bench.bare_channels:application

(the daphne Levity runs on, bench/servers.py's ``daphne_argv``).
"""

from __future__ import annotations

import django
import orjson
from django.conf import settings

if not settings.configured:
    # No apps, no database, no channel layer: the consumer gets no channel name.
    settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer

CANNED = {
    "BootNotification": {"currentTime": "2026-01-01T00:00:00.000Z", "interval": 300, "status": "Accepted"},
    "Heartbeat": {"currentTime": "2026-01-01T00:00:00.000Z"},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
    "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
}


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept("ocpp1.6")

    async def receive(self, text_data=None, bytes_data=None) -> None:
        frame = orjson.loads(text_data)
        if frame[0] == 2:
            await self.send(orjson.dumps([3, frame[1], CANNED.get(frame[2], {})]).decode())


class BareConsumerNoHop(BareConsumer):
    async def dispatch(self, message) -> None:
        # As AsyncConsumer.dispatch, minus aclose_old_connections(): no database here.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


application = BareConsumer.as_asgi()
application_no_hop = BareConsumerNoHop.as_asgi()
