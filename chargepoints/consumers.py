"""The WebSocket consumer that hosts one OCPP 1.6 session per connection."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from plugins import loading
from plugins.signals import charge_point_connected, charge_point_disconnected

from . import services, sessions
from .handlers import LevityChargePoint

logger = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
#: OCPP-J sets no limit; 48 characters of URL-safe text is what we accept.
CHARGE_POINT_ID = re.compile(r"^[A-Za-z0-9._:@+~*-]{1,48}$")
#: Close code sent to a session that a reconnect with the same id replaced.
CLOSE_REPLACED = 4000
#: Close code when the client offered no `ocpp1.6` subprotocol. (RFC 6455's 1002
#: is reserved to the WebSocket layer; daphne only sends 1000 and 3000-4999.)
CLOSE_SUBPROTOCOL_REQUIRED = 4001


class OCPPConsumer(AsyncWebsocketConsumer):
    """Accepts `ocpp1.6` only, registers the charge point, drives a LevityChargePoint.

    Subclasses AsyncWebsocketConsumer (not the JSON one) so that invalid JSON and
    binary frames reach the session and get an OCPP answer.
    """

    charge_point: LevityChargePoint | None = None

    async def connect(self) -> None:
        charge_point_id = self.scope["url_route"]["kwargs"]["charge_point_id"]
        if SUBPROTOCOL not in self.scope.get("subprotocols", ()):
            logger.warning("%s: refused, no %s subprotocol offered", charge_point_id, SUBPROTOCOL)
            await self.accept()
            await self.close(code=CLOSE_SUBPROTOCOL_REQUIRED)
            return
        if not CHARGE_POINT_ID.match(charge_point_id):
            logger.warning("Refused charge point id %r: not 1-48 URL-safe characters", charge_point_id)
            await self.close()
            return
        client = self.scope.get("client") or ("", 0)
        remote_address = f"{client[0]}:{client[1]}" if client[0] else ""
        row = await database_sync_to_async(services.register_connection)(
            charge_point_id,
            remote_address,
            datetime.now(timezone.utc),
            auto_register=settings.LEVITY_AUTO_REGISTER,
        )
        if row is None:
            logger.warning("Refused unknown charge point %s (LEVITY_AUTO_REGISTER=false)", charge_point_id)
            await self.close()
            return
        await self.accept(SUBPROTOCOL)
        self.charge_point = LevityChargePoint(
            charge_point_id,
            self,
            plugins=loading.plugins_for(charge_point_id),
            remote_address=remote_address,
            charge_point_pk=row.pk,
        )
        previous = sessions.register(self.charge_point)
        if previous is not None:
            logger.info("%s reconnected; closing its previous session", charge_point_id)
            await previous.close(CLOSE_REPLACED)
        logger.info("%s connected from %s", charge_point_id, remote_address)
        await self.charge_point.initialize_plugins()
        if charge_point_connected.receivers:
            await charge_point_connected.asend_robust(
                sender=LevityChargePoint, charge_point=self.charge_point
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.charge_point is not None:
            await self.charge_point.receive_frame(text_data if text_data is not None else bytes_data)

    async def disconnect(self, code: int) -> None:
        session = self.charge_point
        if session is None:
            return
        await session.shutdown(code)
        if sessions.unregister(session):
            now = datetime.now(timezone.utc)
            await database_sync_to_async(services.record_disconnect)(
                session.charge_point_pk,
                now,
                datetime.fromtimestamp(session.last_seen_at, timezone.utc),
                datetime.fromtimestamp(session.last_heartbeat_at, timezone.utc)
                if session.last_heartbeat_at
                else None,
            )
        logger.info(
            "%s disconnected (code %s) after %.0fs", session.id, code, time.time() - session.connected_at
        )
        if charge_point_disconnected.receivers:
            await charge_point_disconnected.asend_robust(
                sender=LevityChargePoint, charge_point=session, close_code=code
            )
