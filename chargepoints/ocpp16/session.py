"""LevityChargePoint: the OCPP 1.6 session -- the 1.6 handlers on the shared session.

What every version shares (framing, calls to the charge point, the inbox worker,
hooks, lifecycle) is chargepoints.session.base.Session; this module holds what
1.6 says: its CP-initiated actions and what each stores, through the writes
below. Validation, error codes and schemas are 1.6's (``protocol``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import ModuleType
from typing import Any, ClassVar

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from levity_site.conf import settings
from plugins import decisions, dispatch
from plugins.base import PluginContext, PluginHook
from transactions import services as tx_services
from transactions.repositories import MeterValueRepository, TransactionRepository

from .. import services
from ..repositories import ChargePointRepository, ConnectorRepository
from ..session import writer
from ..session.base import ChargePointDisconnected, Session, handlers  # noqa: F401 - public names
from ..timestamps import format_timestamp, parse_timestamp
from . import protocol
from .security import SecurityExtensionHandlers

#: The writes of a 1.6 session; each goes to the database in the shared batches of
#: chargepoints.session.writer (one thread hop, one commit for all that queued meanwhile).
meter_values_writer: writer.Write[tx_services.MeterValuesRequest, int] = writer.Write(
    tx_services.record_meter_values_batch
)
boots_writer: writer.Write[services.Boot, str] = writer.Write(services.record_boots)
status_notifications_writer: writer.Write[services.StatusReport, None] = writer.Write(
    services.record_status_notifications
)
#: Authorize only reads, but many at once read faster together too.
authorizations: writer.Write[tx_services.Authorization, dict] = writer.Write(tx_services.authorize_many)
transaction_starts: writer.Write[tx_services.TransactionStart, tx_services.StartResult] = writer.Write(
    tx_services.start_transactions, tx_services.start_transaction
)
transaction_stops: writer.Write[tx_services.TransactionStop, tx_services.StopResult] = writer.Write(
    tx_services.stop_transactions
)


class LevityChargePoint(SecurityExtensionHandlers, Session):
    """One connected OCPP 1.6 charge point.

    ``connection`` is anything with ``async send(str)`` (and async iteration for
    ``start()``): the Channels consumer, or a ``websockets`` connection. ``db`` is
    accepted for the spec's signature; the database is Django's.
    """

    protocol: ClassVar[ModuleType] = protocol
    call_results = call_result
    subprotocol = "ocpp1.6"

    tx_repo = TransactionRepository(writer.run)
    meter_repo = MeterValueRepository()
    conn_repo = ConnectorRepository()
    cp_repo = ChargePointRepository(writer.run)

    # --- CP-initiated actions ---------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> call_result.BootNotification:
        data = {
            "charge_point_vendor": charge_point_vendor,
            "charge_point_model": charge_point_model,
            **kwargs,
        }
        answer = await self._process(
            PluginHook.BEFORE_BOOT_NOTIFICATION,
            PluginHook.AFTER_BOOT_NOTIFICATION,
            data,
            self._boot_notification,
        )
        self.registration_status = str(getattr(answer.status, "value", answer.status))
        return answer

    async def _boot_notification(self, data: dict, context: PluginContext) -> call_result.BootNotification:
        now = _now()
        status = await self._write(boots_writer, services.Boot(self.charge_point_pk, data, now))  # type: ignore[arg-type]  # registered: ensure_registered set it
        return call_result.BootNotification(
            current_time=format_timestamp(now),
            interval=settings.LEVITY_HEARTBEAT_INTERVAL,
            status=status,
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs: Any) -> call_result.Heartbeat:
        return await self._process(
            PluginHook.BEFORE_HEARTBEAT, PluginHook.AFTER_HEARTBEAT, kwargs, self._heartbeat
        )

    async def _heartbeat(self, data: dict, context: PluginContext) -> call_result.Heartbeat:
        # Kept in memory; chargepoints.sessions writes it in bulk, not per heartbeat.
        self.last_heartbeat_at = time.time()
        return call_result.Heartbeat(current_time=format_timestamp(_now()))

    @on(Action.status_notification)
    async def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> call_result.StatusNotification:
        data = {"connector_id": connector_id, "error_code": error_code, "status": status, **kwargs}
        return await self._process(
            PluginHook.BEFORE_STATUS_NOTIFICATION,
            PluginHook.AFTER_STATUS_NOTIFICATION,
            data,
            self._status_notification,
        )

    async def _status_notification(
        self, data: dict, context: PluginContext
    ) -> call_result.StatusNotification:
        _check_connector_id(data["connector_id"])
        timestamp = data.get("timestamp")
        await self._write(
            status_notifications_writer,
            services.StatusReport(
                self.charge_point_pk,  # type: ignore[arg-type]  # registered: ensure_registered set it
                connector_id=data["connector_id"],
                status=data["status"],
                error_code=data["error_code"],
                info=data.get("info") or "",
                vendor_id=data.get("vendor_id") or "",
                vendor_error_code=data.get("vendor_error_code") or "",
                timestamp=parse_timestamp(timestamp) if timestamp else None,
                received_at=_now(),
            ),
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **kwargs: Any) -> call_result.Authorize:
        return await self._process(
            PluginHook.BEFORE_AUTHORIZE,
            PluginHook.AFTER_AUTHORIZE,
            {"id_tag": id_tag, **kwargs},
            self._authorize,
        )

    async def _authorize(self, data: dict, context: PluginContext) -> call_result.Authorize:
        info = decisions.id_tag_info(context.decision)
        if info is None:
            info = await self._write(authorizations, tx_services.Authorization(data["id_tag"], _now()))
        return call_result.Authorize(id_tag_info=info)

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> call_result.StartTransaction:
        data = {
            "connector_id": connector_id,
            "id_tag": id_tag,
            "meter_start": meter_start,
            "timestamp": timestamp,
            **kwargs,
        }
        return await self._process(
            PluginHook.BEFORE_START_TRANSACTION,
            PluginHook.AFTER_START_TRANSACTION,
            data,
            self._start_transaction,
        )

    async def _start_transaction(self, data: dict, context: PluginContext) -> call_result.StartTransaction:
        _check_connector_id(data["connector_id"], allow_zero=False)
        decided = decisions.id_tag_info(context.decision)
        started = await self._write(
            transaction_starts,
            tx_services.TransactionStart(
                self.charge_point_pk,  # type: ignore[arg-type]  # registered: ensure_registered set it
                connector_id=data["connector_id"],
                id_tag=data["id_tag"],
                meter_start=data["meter_start"],
                timestamp=parse_timestamp(data["timestamp"]),
                reservation_id=data.get("reservation_id"),
                now=_now(),
                decided_id_tag_info=decided,
            ),
        )
        return call_result.StartTransaction(
            transaction_id=started.transaction_id, id_tag_info=started.id_tag_info
        )

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> call_result.StopTransaction:
        data = {
            "meter_stop": meter_stop,
            "timestamp": timestamp,
            "transaction_id": transaction_id,
            **kwargs,
        }
        return await self._process(
            PluginHook.BEFORE_STOP_TRANSACTION,
            PluginHook.AFTER_STOP_TRANSACTION,
            data,
            self._stop_transaction,
        )

    async def _stop_transaction(self, data: dict, context: PluginContext) -> call_result.StopTransaction:
        stopped = await self._write(
            transaction_stops,
            tx_services.TransactionStop(
                self.charge_point_pk,  # type: ignore[arg-type]  # registered: ensure_registered set it
                transaction_id=data["transaction_id"],
                meter_stop=data["meter_stop"],
                timestamp=parse_timestamp(data["timestamp"]),
                reason=data.get("reason"),
                id_tag=data.get("id_tag"),
                transaction_data=data.get("transaction_data"),
                now=_now(),
                decided_id_tag_info=decisions.id_tag_info(context.decision),
            ),
        )
        # For AFTER_STOP_TRANSACTION receivers: "stopped", "corrected", "rebuilt", "already_stopped"
        # or "repeated", and the Transaction row.
        context.stop_outcome = stopped.outcome  # type: ignore[attr-defined]  # this hook's own attributes (plugins/signals.py)
        context.transaction = stopped.transaction  # type: ignore[attr-defined]
        return call_result.StopTransaction(id_tag_info=stopped.id_tag_info)

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list[dict], **kwargs: Any
    ) -> call_result.MeterValues:
        data = {"connector_id": connector_id, "meter_value": meter_value, **kwargs}
        return await self._process(
            PluginHook.BEFORE_METER_VALUES,
            PluginHook.AFTER_METER_VALUES,
            data,
            self._meter_values,
        )

    async def _meter_values(self, data: dict, context: PluginContext) -> call_result.MeterValues:
        _check_connector_id(data["connector_id"])
        await self._write(
            meter_values_writer,
            tx_services.MeterValuesRequest(
                charge_point_pk=self.charge_point_pk,  # type: ignore[arg-type]  # registered: ensure_registered set it
                connector_id=data["connector_id"],
                transaction_id=data.get("transaction_id"),
                meter_value=data["meter_value"],
                now=_now(),
            ),
        )
        return call_result.MeterValues()

    @on(Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **kwargs
    ) -> call_result.DataTransfer:
        answer = await dispatch.data_transfer_answer(self, vendor_id, message_id, data)
        status = answer.get("status", "UnknownVendorId")
        response_data = answer.get("data")
        await self._db(
            services.record_data_transfer,
            vendor_id=vendor_id,
            message_id=message_id or "",
            data=data or "",
            status=status,
            response_data=response_data or "",
            received_at=_now(),
        )
        return call_result.DataTransfer(status=status, data=response_data)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(
        self, status: str, **kwargs: Any
    ) -> call_result.DiagnosticsStatusNotification:
        await self._db(services.record_diagnostics_status, status, _now())
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(
        self, status: str, **kwargs: Any
    ) -> call_result.FirmwareStatusNotification:
        await self._db(services.record_firmware_status, status, _now())
        return call_result.FirmwareStatusNotification()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _check_connector_id(connector_id: int, *, allow_zero: bool = True) -> None:
    if connector_id < 0 or (connector_id == 0 and not allow_zero):
        raise PropertyConstraintViolationError(
            description=f"connectorId {connector_id} is not a valid connector",
            details={"field": "connectorId"},
        )
