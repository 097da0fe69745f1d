"""A real OCPP 1.6 charge point for tests: the `ocpp` package over `websockets`.

It answers the Central System's commands the way a cooperative charger does and
records every command it received, so tests can assert on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class OCPPClient(ChargePoint):
    def __init__(self, charge_point_id: str, connection):
        super().__init__(charge_point_id, connection, response_timeout=15)
        self.received: list[tuple[str, dict]] = []
        self.command_received = asyncio.Event()
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, url: str, **connect_kwargs) -> OCPPClient:
        ws = await websockets.connect(url, subprotocols=["ocpp1.6"], **connect_kwargs)
        client = cls(url.rsplit("/", 1)[-1], ws)
        client._task = asyncio.create_task(client._serve())
        return client

    async def _serve(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def _record(self, action: str, payload: dict) -> None:
        self.received.append((action, payload))
        self.command_received.set()

    async def wait_for_command(self, action: str, timeout: float = 10) -> dict:
        async def wait():
            while True:
                for name, payload in self.received:
                    if name == action:
                        return payload
                self.command_received.clear()
                await self.command_received.wait()

        return await asyncio.wait_for(wait(), timeout)

    # --- convenience senders ----------------------------------------------------

    async def boot(self, vendor: str = "Acme", model: str = "AC-22", **kwargs):
        return await self.call(
            call.BootNotification(charge_point_vendor=vendor, charge_point_model=model, **kwargs)
        )

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **kw):
        return await self.call(
            call.StatusNotification(
                connector_id=connector_id, error_code=error_code, status=status, **kw
            )
        )

    async def start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp=None):
        return await self.call(
            call.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=meter_start,
                timestamp=timestamp or now_iso(),
            )
        )

    async def stop_transaction(self, transaction_id: int, meter_stop: int, **kwargs):
        kwargs.setdefault("timestamp", now_iso())
        return await self.call(
            call.StopTransaction(transaction_id=transaction_id, meter_stop=meter_stop, **kwargs)
        )

    # --- answers to CS->CP commands ---------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag, **kwargs):
        self._record("RemoteStartTransaction", {"id_tag": id_tag, **kwargs})
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id, **kwargs):
        self._record("RemoteStopTransaction", {"transaction_id": transaction_id})
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.reset)
    def on_reset(self, type, **kwargs):
        self._record("Reset", {"type": type})
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id, **kwargs):
        self._record("UnlockConnector", {"connector_id": connector_id})
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id, type, **kwargs):
        self._record("ChangeAvailability", {"connector_id": connector_id, "type": type})
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.get_configuration)
    def on_get_configuration(self, key=None, **kwargs):
        self._record("GetConfiguration", {"key": key})
        keys = [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        ]
        if key:
            keys = [k for k in keys if k["key"] in key]
        return call_result.GetConfiguration(configuration_key=keys)

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value, **kwargs):
        self._record("ChangeConfiguration", {"key": key, "value": value})
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, **kwargs):
        self._record("TriggerMessage", {"requested_message": requested_message, **kwargs})
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs):
        self._record("ClearCache", {})
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **kwargs):
        self._record("DataTransfer", {"vendor_id": vendor_id, **kwargs})
        return call_result.DataTransfer(status="Accepted", data="pong")
