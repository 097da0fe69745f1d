"""The WebSocket consumer that hosts one OCPP 1.6 session per connection."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from datetime import datetime, timezone

from plugins import loading
from plugins.signals import charge_point_disconnected, connection_refused

from .. import services
from ..ocpp16.session import LevityChargePoint
from ..security import Credentials
from . import authentication, commands, limits, processes, registry
from .groups import CommandGroup
from .registry import connections_writer
from .transport import LeanWebsocketConsumer

logger = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
#: OCPP-J sets no limit; 48 characters of URL-safe text is what we accept.
CHARGE_POINT_ID = re.compile(r"^[A-Za-z0-9._:@+~*-]{1,48}$")
#: Ids that match the pattern but cannot be addressed in a URL: a path segment of
#: "." or ".." is removed by clients and proxies (RFC 3986's dot segments).
UNADDRESSABLE_IDS = {".", ".."}
#: Close code when the client offered no `ocpp1.6` subprotocol. (RFC 6455's 1002
#: is reserved to the WebSocket layer; daphne only sends 1000 and 3000-4999.)
CLOSE_SUBPROTOCOL_REQUIRED = 4001
#: The close code a session ends with when the server shuts down (RFC 6455 "going away").
CLOSE_GOING_AWAY = 1001
#: How long, at shutdown, the sessions get to end (plugins' cleanup, the rows offline).
SHUTDOWN_GRACE_SECONDS = 10


def refused(charge_point_id: str, address: str, kind: str, reason: str) -> None:
    """Tell plugins.signals.connection_refused's receivers (metrics) of a refused connection."""
    if connection_refused.receivers:
        connection_refused.send_robust(
            None, charge_point_id=charge_point_id, address=address, kind=kind, reason=reason
        )


class OCPPConsumer(LeanWebsocketConsumer):
    """Accepts `ocpp1.6` only, registers the charge point, drives a LevityChargePoint.

    An AsyncWebsocketConsumer (not the JSON one) so that invalid JSON and binary
    frames reach the session and get an OCPP answer; through LeanWebsocketConsumer,
    which drops Channels' per-frame costs that the session does not need.
    """

    charge_point: LevityChargePoint | None = None
    command_group: CommandGroup | None = None
    address = ""
    _disconnected = False

    @property
    def channel_layer_alias(self) -> str | None:
        # Join a channel layer only when commands may come from other server processes:
        # on the default single-process set-up a connection costs no channel, no
        # channel-layer receive task and no group. (An alias that is not configured
        # makes Channels skip the layer.)
        return "default" if commands.cross_process() else None

    async def __call__(self, scope: dict, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne shuts down by cancelling every connection's application, with no
            # websocket.disconnect: end the session as if the charge point went away,
            # so that plugins clean up and the charge point is recorded offline.
            if self.charge_point is not None and not self._disconnected:
                try:
                    await asyncio.wait_for(self.disconnect(CLOSE_GOING_AWAY), SHUTDOWN_GRACE_SECONDS)
                except TimeoutError:
                    logger.warning(
                        "%s: the session did not end within %s s of the shutdown",
                        self.charge_point.id,
                        SHUTDOWN_GRACE_SECONDS,
                    )
            raise

    async def connect(self) -> None:
        charge_point_id = self.scope["url_route"]["kwargs"]["charge_point_id"]
        client = self.scope.get("client") or ("", 0)
        address = client[0] or ""
        if not limits.handshake_allowed(address):
            logger.warning(
                "%s: refused %r, too many failed handshakes from its address", address, charge_point_id
            )
            refused(charge_point_id, address, "throttled", "too many failed handshakes")
            await self.close()
            return
        if not limits.connection_allowed(address):
            logger.warning("%s: refused %r, too many connections from its address", address, charge_point_id)
            refused(charge_point_id, address, "throttled", "too many connections")
            await self.close()
            return
        if SUBPROTOCOL not in self.scope.get("subprotocols", ()):
            logger.warning(
                "%s: refused from %s, no %s subprotocol offered", charge_point_id, address, SUBPROTOCOL
            )
            limits.handshake_failed(address, "no subprotocol")
            refused(charge_point_id, address, "invalid", "no subprotocol")
            await self.accept()
            await self.close(code=CLOSE_SUBPROTOCOL_REQUIRED)
            return
        if not CHARGE_POINT_ID.match(charge_point_id) or charge_point_id in UNADDRESSABLE_IDS:
            logger.warning(
                "Refused charge point id %r from %s: not 1-48 URL-safe characters", charge_point_id, address
            )
            limits.handshake_failed(address, "invalid id")
            refused(charge_point_id, address, "invalid", "invalid id")
            await self.close()
            return
        remote_address = f"{client[0]}:{client[1]}" if client[0] else ""
        connected_at = datetime.now(timezone.utc)
        connection = services.Connection(
            charge_point_id,
            remote_address,
            connected_at,
            server_process=processes.current(),
            registers_unknown_as=authentication.registers_unknown_as(),
        )
        # Under security profile 0 the connect's own write admits the charge point;
        # under the others it brings back the credentials to check the upgrade against
        # (None: an unknown id it did not register).
        connected = await connections_writer.submit(connection)
        if not isinstance(connected, services.Connected):
            connected = await self.admit(connection, connected, address)
            if connected is None:
                return
        if connected.registered:
            logger.info(
                "%s: unknown charge point registered %s", charge_point_id, connected.registration_status
            )
        await self.accept(SUBPROTOCOL)
        limits.connection_opened(address)
        self.address = address
        self.charge_point = LevityChargePoint(
            charge_point_id,
            self,
            plugins=loading.plugins_for(charge_point_id),
            remote_address=remote_address,
            charge_point_pk=connected.pk,
            row_connected_at=connected_at,
        )
        self.charge_point.registration_status = connected.registration_status
        await registry.open_session(self.charge_point)
        logger.info("%s connected from %s", charge_point_id, remote_address)
        if self.channel_layer is not None:
            self.command_group = await CommandGroup.join(
                self.charge_point, self.channel_layer, self.channel_name
            )
        # Plugins' initialize() and charge_point_connected run as a task: they may
        # call the charge point, whose answer this consumer must be free to receive.
        self.charge_point.begin()

    async def admit(
        self, connection: services.Connection, credentials: Credentials | None, address: str
    ) -> services.Connected | None:
        """Check the upgrade against the charge point's ``credentials`` (None: an unknown
        id), and write the connect if it is admitted; else refuse the upgrade (None).

        Before any session exists: a refused takeover leaves the live session be.
        """
        charge_point_id, remote_address = connection.charge_point_id, connection.remote_address
        admission = await authentication.admit(self.scope, charge_point_id, credentials)
        if isinstance(admission, authentication.Refusal):
            logger.warning("%s: refused from %s: %s", charge_point_id, remote_address, admission.reason)
            limits.handshake_failed(address, admission.reason)
            kind = "authentication" if admission.status == 401 else "policy"
            refused(charge_point_id, address, kind, admission.reason)
            await self.refuse(admission.status)
            return None
        connected = await connections_writer.submit(
            replace(
                connection,
                proven=True,
                registers_unknown_as=admission.registration_status if admission.register else "",
            )
        )
        if connected is None:  # deleted meanwhile
            logger.warning("%s: refused from %s: no longer registered", charge_point_id, remote_address)
            await self.close()
            return None
        assert isinstance(connected, services.Connected)  # proven: never the credentials back
        if admission.completes_rotation:
            await authentication.complete_password_rotation(charge_point_id, connected.pk, admission)
        return connected

    async def refuse(self, status: int) -> None:
        """Answer the upgrade with HTTP ``status`` (ASGI's websocket.http.response
        extension, which levity_site.server adds to daphne); without it, a 403."""
        if "websocket.http.response" not in self.scope.get("extensions", {}):
            await self.close()
            return
        headers = [(b"content-type", b"text/plain")]
        if status == 401:
            headers.append((b"www-authenticate", f'Basic realm="{authentication.REALM}"'.encode()))
        await self.base_send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await self.base_send({"type": "websocket.http.response.body", "body": b""})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.charge_point is not None:
            await self.charge_point.receive_frame(text_data if text_data is not None else bytes_data)  # type: ignore[arg-type]  # channels gives one
            await self.charge_point.wait_for_room()

    async def disconnect(self, code: int) -> None:
        session = self.charge_point
        if session is None or self._disconnected:
            return
        self._disconnected = True
        limits.connection_closed(self.address)
        if self.command_group is not None:
            await self.command_group.leave()
        await session.shutdown(code)
        await registry.close_session(session)
        logger.info(
            "%s disconnected (code %s) after %.0fs", session.id, code, time.time() - session.connected_at
        )
        if charge_point_disconnected.receivers:
            await charge_point_disconnected.asend_robust(
                sender=LevityChargePoint, charge_point=session, close_code=code
            )

    # --- commands from other server processes (REDIS_URL) -----------------------

    async def ocpp_command(self, event: dict) -> None:
        """A command routed here by another process (chargepoints.groups)."""
        if self.command_group is not None:
            await self.command_group.handle(event)

    async def session_replaced(self, event: dict) -> None:
        """The charge point reconnected to another process (chargepoints.groups)."""
        if self.command_group is not None:
            await self.command_group.handle(event)
