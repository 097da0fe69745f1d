"""Start charging as soon as a cable is plugged in: public stations without RFID."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ocpp.v16 import call

from chargepoints.ocpp16.session import ChargePointDisconnected
from plugins.base import ChargePointPlugin, PluginContext, PluginHook

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint

PREPARING = "Preparing"


class AutoRemoteStartPlugin(ChargePointPlugin):
    """On StatusNotification ``Preparing`` for a connector, wait ``delay_seconds`` and
    send RemoteStartTransaction for that connector with ``id_tag``.

    Nothing is sent if, after the delay, the connector is no longer ``Preparing`` or
    already has an active transaction. One start is pending per connector: a new
    ``Preparing`` replaces it. Pending starts are cancelled when the charge point
    disconnects.
    """

    def __init__(self, id_tag: str = "anonymous", delay_seconds: float = 1.0) -> None:
        super().__init__()
        if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= 20:
            raise ValueError(f"id_tag must be 1 to 20 characters (an OCPP IdToken), got {id_tag!r}")
        if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, (int, float)):
            raise ValueError(f"delay_seconds must be a number, got {delay_seconds!r}")
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must not be negative, got {delay_seconds!r}")
        self.id_tag = id_tag
        self.delay_seconds = float(delay_seconds)
        # (charge point id, connector id) -> the pending start (its own task).
        self._pending: dict[tuple[str, int], asyncio.Task] = {}

    def hooks(self) -> dict[PluginHook, str]:
        return {PluginHook.AFTER_STATUS_NOTIFICATION: "on_status_notification"}

    async def on_status_notification(self, context: PluginContext) -> None:
        connector_id = context.message_data.get("connector_id")
        if context.message_data.get("status") != PREPARING or not connector_id:
            return  # connector 0 is the charge point as a whole: nothing to start
        charge_point = context.charge_point
        key = (charge_point.id, connector_id)
        previous = self._pending.pop(key, None)
        if previous is not None:
            previous.cancel()
            self.logger.debug("%s/%s: Preparing again; delay restarted", *key)
        task = asyncio.create_task(self._start_after_delay(charge_point, connector_id))
        self._pending[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[str, int], task: asyncio.Task) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]

    async def _start_after_delay(self, charge_point: LevityChargePoint, connector_id: int) -> None:
        await asyncio.sleep(self.delay_seconds)
        where = f"{charge_point.id}/{connector_id}"
        try:
            connector = await charge_point.conn_repo.get_by_cp_and_connector(charge_point.id, connector_id)
            if connector is None or connector.status != PREPARING:
                status = connector.status if connector else "unknown"
                self.logger.info("%s left Preparing (now %s); no remote start", where, status)
                return
            if await charge_point.tx_repo.get_active(charge_point.id, connector_id):
                self.logger.info("%s already has an active transaction; no remote start", where)
                return
            response = await charge_point.call(
                call.RemoteStartTransaction(connector_id=connector_id, id_tag=self.id_tag)
            )
        except ChargePointDisconnected:
            self.logger.info("%s disconnected; no remote start", where)
            return
        except TimeoutError:
            self.logger.warning("%s did not answer RemoteStartTransaction in time", where)
            return
        except Exception:
            # Its own task: nobody else would see the error.
            self.logger.exception("%s: remote start failed", where)
            return
        if response is None:
            self.logger.warning("%s answered RemoteStartTransaction with a CALLERROR", where)
        elif response.status != "Accepted":
            self.logger.warning("%s answered RemoteStartTransaction: %s", where, response.status)
        else:
            self.logger.info("%s: remote start for %r accepted", where, self.id_tag)

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        pending = {key: task for key, task in self._pending.items() if key[0] == charge_point.id}
        for (cp_id, connector_id), task in pending.items():
            task.cancel()
            self.logger.info(
                "%s/%s: pending remote start cancelled (charge point disconnected)",
                cp_id,
                connector_id,
            )
        if pending:
            await asyncio.gather(*pending.values(), return_exceptions=True)
