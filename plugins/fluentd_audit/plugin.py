"""FluentdAuditPlugin and FluentdWebSocketAuditPlugin: audit records to Fluentd (docs/observability.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chargepoints.ocpp16 import protocol
from plugins.base import ChargePointPlugin, PluginContext, PluginHook

from .senders import AuditSender, get_sender

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint


class _FluentdPlugin(ChargePointPlugin):
    """Emits records through the process's shared sender for (host, port, tag_prefix)."""

    _sender_timeout: float | None = None

    def __init__(self, tag_prefix: str = "ocpp", host: str = "localhost", port: int = 24224):
        super().__init__()
        self.tag_prefix = tag_prefix
        self.host = host
        self.port = port
        self._sender: AuditSender | None = None

    @property
    def sender(self) -> AuditSender:
        if self._sender is None:
            self._sender = get_sender(self.host, self.port, self.tag_prefix, self._sender_timeout)
        return self._sender

    def emit(self, label: str, record: dict[str, Any]) -> None:
        """Queue one record tagged ``<tag_prefix>.<label>``; never waits for Fluentd."""
        self.sender.emit(label, record)


class FluentdAuditPlugin(_FluentdPlugin):
    """One audit record per OCPP message a charge point sends, after it was answered.

    Tags: ``<tag_prefix>.boot``, ``.heartbeat``, ``.status``, ``.authorize``,
    ``.transaction.start``, ``.transaction.stop``, ``.meter``. Records:
    ``{"type": "ocpp", "cp": ..., "dir": "recv", "msg": {...}}`` where ``msg`` is the
    request in snake_case, plus ``response`` (what the charge point was answered)
    when it says something, and for a stop the transaction's ``energy_wh``.
    """

    def __init__(
        self,
        tag_prefix: str = "ocpp",
        host: str = "localhost",
        port: int = 24224,
        timeout: float = 3.0,
    ):
        super().__init__(tag_prefix, host, port)
        self.timeout = timeout
        self._sender_timeout = timeout

    def hooks(self) -> dict[PluginHook, str]:
        # AFTER hooks run once the answer is on the wire: auditing never delays it.
        return {
            PluginHook.AFTER_BOOT_NOTIFICATION: "log_boot_notification",
            PluginHook.AFTER_HEARTBEAT: "log_heartbeat",
            PluginHook.AFTER_STATUS_NOTIFICATION: "log_status_notification",
            PluginHook.AFTER_AUTHORIZE: "log_authorize",
            PluginHook.AFTER_START_TRANSACTION: "log_start_transaction",
            PluginHook.AFTER_STOP_TRANSACTION: "log_stop_transaction",
            PluginHook.AFTER_METER_VALUES: "log_meter_values",
        }

    def record(self, context: PluginContext, *, response: bool = True) -> dict[str, Any]:
        record = {
            "type": "ocpp",
            "cp": context.charge_point.id,
            "dir": "recv",
            "msg": context.message_data,
        }
        if response and context.result is not None:
            answer = protocol.snake_case(protocol.to_payload(context.result))
            if answer:
                record["response"] = answer
        return record

    async def log_boot_notification(self, context: PluginContext) -> None:
        self.emit("boot", self.record(context))

    async def log_heartbeat(self, context: PluginContext) -> None:
        self.emit("heartbeat", self.record(context))

    async def log_status_notification(self, context: PluginContext) -> None:
        self.emit("status", self.record(context, response=False))

    async def log_authorize(self, context: PluginContext) -> None:
        self.emit("authorize", self.record(context))

    async def log_start_transaction(self, context: PluginContext) -> None:
        self.emit("transaction.start", self.record(context))

    async def log_stop_transaction(self, context: PluginContext) -> None:
        record = self.record(context)
        transaction = getattr(context, "transaction", None)
        # The stored transaction's energy (meter_stop - meter_start), None when its
        # meterStop was below meterStart.
        record["energy_wh"] = transaction.energy_wh if transaction is not None else None
        if transaction is not None:
            record["connector_id"] = transaction.connector_id
            record["meter_start"] = transaction.meter_start
        record["outcome"] = getattr(context, "stop_outcome", None)
        self.emit("transaction.stop", record)

    async def log_meter_values(self, context: PluginContext) -> None:
        self.emit("meter", self.record(context, response=False))


class FluentdWebSocketAuditPlugin(_FluentdPlugin):
    """A record when a charge point's WebSocket session starts and when it ends.

    Tag ``<tag_prefix>.ws``; records ``{"type": "ws", "cp": ..., "event": "connect" |
    "disconnect", "remote_addr": "ip:port"}``, a disconnect also with ``close_code``
    and ``duration_s`` (how long the session lasted, in seconds).
    """

    def __init__(self, tag_prefix: str = "ocpp", host: str = "localhost", port: int = 24224):
        super().__init__(tag_prefix, host, port)

    def _record(self, charge_point: LevityChargePoint, event: str) -> dict[str, Any]:
        return {
            "type": "ws",
            "cp": charge_point.id,
            "event": event,
            "remote_addr": charge_point.remote_address,
        }

    async def initialize(self, charge_point: LevityChargePoint) -> None:
        self.emit("ws", self._record(charge_point, "connect"))

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        record = self._record(charge_point, "disconnect")
        record["close_code"] = charge_point.close_code
        record["duration_s"] = round(time.time() - charge_point.connected_at, 3)
        self.emit("ws", record)
