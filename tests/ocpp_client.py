"""A real OCPP 1.6 charge point for tests: the `ocpp` package over `websockets`.

It answers the Central System's commands the way a cooperative charger does and
records every command it received, so tests can assert on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import websockets
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.typing import Subprotocol


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class OCPPClient(ChargePoint):
    def __init__(self, charge_point_id: str, connection):
        super().__init__(charge_point_id, connection, response_timeout=15)
        self.received: list[tuple[str, dict]] = []
        self.command_received = asyncio.Event()
        self.answers: dict[str, object] = {}
        self.delays: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, url: str, **connect_kwargs) -> OCPPClient:
        ws = await websockets.connect(url, subprotocols=[Subprotocol("ocpp1.6")], **connect_kwargs)
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

    async def closed_by_server(self, timeout: float = 5) -> int | None:
        """The close code the server sent, once it has closed the connection."""
        assert self._task is not None, "open() starts the client"
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self._connection.close_code

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
            call.StatusNotification(connector_id=connector_id, error_code=error_code, status=status, **kw)
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
    #
    # Every OCPP 1.6 CS->CP command is answered (see DEFAULT_ANSWERS) and recorded.
    # A test changes an answer with `client.answers[action] = {...}` (call_result
    # fields, snake_case), an OCPPError instance (answered as CALLERROR), or a
    # callable taking the request; `client.delays[action] = seconds` answers late.

    async def _answer(self, action: str, request: dict):
        self._record(action, request)
        delay = self.delays.get(action)
        if delay:
            await asyncio.sleep(delay)
        answer = self.answers.get(action, DEFAULT_ANSWERS[action])
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, OCPPError):
            raise answer
        return getattr(call_result, action)(**answer)


def _configuration(request: dict) -> dict:
    keys = [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    ]
    wanted = request.get("key")
    if not wanted:
        return {"configuration_key": keys}
    known = {k["key"] for k in keys}
    return {
        "configuration_key": [k for k in keys if k["key"] in wanted],
        "unknown_key": [k for k in wanted if k not in known] or None,
    }


DEFAULT_ANSWERS = {
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "ChangeAvailability": {"status": "Accepted"},
    "ChangeConfiguration": {"status": "Accepted"},
    "GetConfiguration": _configuration,
    "ClearCache": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "DataTransfer": {"status": "Accepted", "data": "pong"},
    "GetDiagnostics": {"file_name": "diagnostics.zip"},
    "UpdateFirmware": {},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetCompositeSchedule": {
        "status": "Accepted",
        "connector_id": 1,
        "schedule_start": "2025-01-01T00:00:00Z",
        "charging_schedule": {
            "charging_rate_unit": "W",
            "charging_schedule_period": [{"start_period": 0, "limit": 11000.0}],
        },
    },
    "SendLocalList": {"status": "Accepted"},
    "GetLocalListVersion": {"list_version": 1},
    "CertificateSigned": {"status": "Accepted"},
    "InstallCertificate": {"status": "Accepted"},
    "GetInstalledCertificateIds": {
        "status": "Accepted",
        "certificate_hash_data": [
            {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": "a1" * 32,
                "issuer_key_hash": "b2" * 32,
                "serial_number": "1f",
            }
        ],
    },
    "DeleteCertificate": {"status": "Accepted"},
    "ExtendedTriggerMessage": {"status": "Accepted"},
    "GetLog": {"status": "Accepted", "filename": "security.log"},
    "SignedUpdateFirmware": {"status": "Accepted"},
}


def _command_handler(action: str):
    async def handler(self, **request):
        return await self._answer(action, request)

    handler.__name__ = f"on_{action}"
    return on(action)(handler)


for _action in DEFAULT_ANSWERS:
    setattr(OCPPClient, f"on_{_action}", _command_handler(_action))
