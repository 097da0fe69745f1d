"""LevityChargePoint: one OCPP 1.6 session, on top of ``ocpp.v16.ChargePoint``.

The receive path never blocks: a CALLRESULT/CALLERROR resolves its pending call at
once, and incoming CALLs are handled in order by a per-connection worker task that
exists only while there is work. So a hook may ``await charge_point.call(...)`` at
any point without deadlocking the session (the `ocpp` package's serial
``start()`` loop would).

Each CP-initiated action runs: BEFORE hook -> core handler (persist, build the
answer) -> answer sent -> AFTER hook, as a task tracked by the session.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from ocpp.charge_point import LOGGER as ocpp_logger
from ocpp.exceptions import (
    FormationViolationError,
    InternalError,
    OCPPError,
    PropertyConstraintViolationError,
)
from ocpp.messages import Call, CallError
from ocpp.routing import create_route_map, on
from ocpp.v16 import ChargePoint as OCPP16ChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from plugins import decisions, dispatch
from plugins.base import ChargePointPlugin, PluginContext, PluginHook
from plugins.signals import HOOK_SIGNALS, message_handled
from transactions import services as tx_services
from transactions.repositories import MeterValueRepository, TransactionRepository

from .. import services
from ..repositories import ChargePointRepository, ConnectorRepository
from ..session import processes, registry
from ..session.writer import BulkWrite, run_batched
from . import protocol

logger = logging.getLogger(__name__)

# AFTER hooks collected while a handler runs inside the session, launched once the
# answer is on the wire. Unset when a handler is called directly (tests): then
# AFTER hooks run before the handler returns.
_deferred_after: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "levity_deferred_after", default=None
)


#: MeterValues of every session go to the database in shared batches (one thread hop,
#: one INSERT, one commit for all that queued meanwhile); each answer waits for its batch.
meter_values_writer = BulkWrite(tx_services.record_meter_values_batch)
#: What every charge point sends at once when a server restarts -- its connect,
#: BootNotification and StatusNotifications -- is written in bulk the same way.
connections_writer = BulkWrite(services.register_connections)
boots_writer = BulkWrite(services.record_boots)
status_notifications_writer = BulkWrite(services.record_status_notifications)
#: Authorize only reads, but many at once read faster together too.
authorizations = BulkWrite(tx_services.authorize_many)
transaction_starts = BulkWrite(tx_services.start_transactions, tx_services.start_transaction)
transaction_stops = BulkWrite(tx_services.stop_transactions)


@functools.cache
def handlers(cls: type) -> dict[str, Callable[..., Awaitable[Any]]]:
    """A charge point class's ``@on`` handler functions by action (a plain str).

    By name, as ocpp's route map is, so that a subclass's override of a handler
    method (decorated again or not) is the one called.
    """
    names: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            action = getattr(member, "_on_action", None)
            if action is not None:
                names[getattr(action, "value", action)] = name
    return {action: getattr(cls, name) for action, name in names.items()}


class ChargePointDisconnected(Exception):
    """The charge point went away before answering."""


class LevityChargePoint(OCPP16ChargePoint):
    """One connected charge point.

    ``connection`` is anything with ``async send(str)`` (and ``recv()`` for
    ``start()``): the Channels consumer, or a ``websockets`` connection. ``db`` is
    accepted for the spec's signature; the database is Django's.
    """

    tx_repo = TransactionRepository()
    meter_repo = MeterValueRepository()
    conn_repo = ConnectorRepository()
    cp_repo = ChargePointRepository()

    def __init__(
        self,
        id: str,
        connection: Any,
        db: Any = None,
        *,
        plugins: list[ChargePointPlugin] | None = None,
        response_timeout: float | None = None,
        remote_address: str = "",
        charge_point_pk: int | None = None,
    ) -> None:
        # What ocpp's ChargePoint.__init__ sets, but for its route_map: create_route_map()
        # tries every @on name of every class by getattr, 24 us a connection (2% of a
        # reconnect storm); the handlers are looked up per class instead (handlers()).
        self.id = id
        self._connection = connection
        self._response_timeout = response_timeout or settings.LEVITY_CALL_TIMEOUT
        self._call_lock = asyncio.Lock()
        self._response_queue: asyncio.Queue = asyncio.Queue()
        self._unique_id_generator = uuid.uuid4
        self.logger = ocpp_logger
        self.plugins: list[ChargePointPlugin] = list(plugins or ())
        self.remote_address = remote_address
        self.charge_point_pk = charge_point_pk
        self.connected_at = time.time()
        self.last_seen_at = self.connected_at
        self.last_heartbeat_at: float | None = None
        self.close_code: int | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._inbox: deque[Call] = deque()
        self._worker: asyncio.Task | None = None
        self._after_tasks: set[asyncio.Task] = set()
        self._plugin_hooks = dispatch.bind_hooks(self.plugins)
        self._lenient = settings.LEVITY_OCPP_LENIENT
        self._started: asyncio.Task | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<LevityChargePoint {self.id}>"

    @classmethod
    def answered_actions(cls) -> set[str]:
        """The actions of the CALLs this class answers (its ``@on`` handlers)."""
        return set(handlers(cls))

    @functools.cached_property
    def route_map(self) -> dict:
        """ocpp's route map of this session (bound handlers), built on first use."""
        return create_route_map(self)

    @property
    def connection(self) -> Any:
        """What frames are sent to (the consumer, a websockets connection, a test fake)."""
        return self._connection

    # --- receive path ---------------------------------------------------------

    async def start(self) -> None:
        """Serve a ``websockets``-style connection (the spec's third way).

        Registered in chargepoints.session.registry as the consumer's sessions are, so that
        commands (admin, API, manage.py) reach it and its last-seen times are written;
        with REDIS_URL, in its charge point's channel-layer group too, so that commands
        sent through other server processes reach it.
        """
        from ..session import commands, groups  # both import this module

        await self.ensure_registered()
        await registry.open_session(self)
        group = None
        if commands.cross_process():
            group = await groups.CommandGroup.listen(self, get_channel_layer())
        self.begin()
        try:
            async for raw in self._connection:
                await self.receive_frame(raw)
        finally:
            if group is not None:
                await group.leave()
            await self.shutdown(getattr(self._connection, "close_code", None))
            await registry.close_session(self)
            await dispatch.send_disconnected(self)

    def begin(self) -> asyncio.Task:
        """Start the session: plugins' ``initialize()``, then ``charge_point_connected``.

        It runs as a task, so that the receive path stays free: an ``initialize()``
        may call the charge point and get its answer. Incoming CALLs wait for it.
        """
        if self._started is None:
            self._started = asyncio.create_task(self._begin())
        return self._started

    async def _begin(self) -> None:
        await self.initialize_plugins()
        await dispatch.send_connected(self)

    async def receive_frame(self, raw: str | bytes) -> None:
        """Route one frame; returns at once (CALLs are queued for the worker)."""
        self.last_seen_at = time.time()
        try:
            if not isinstance(raw, str):
                raise protocol.FrameError(
                    FormationViolationError(description="OCPP-J uses text frames, not binary")
                )
            message = protocol.decode(raw)
        except protocol.FrameError as exc:
            logger.warning("%s: bad frame %.200r: %s", self.id, raw, exc.error.description)
            await self._send(protocol.encode_call_error(exc.unique_id, exc.error))
            if message_handled.receivers:
                message_handled.send_robust(
                    sender=LevityChargePoint,
                    charge_point=self,
                    action=None,
                    duration=None,
                    error_code=exc.error.code,
                )
            return
        if isinstance(message, Call):
            self._inbox.append(message)
            if self._worker is None:
                self._worker = asyncio.create_task(self._drain_inbox())
            return
        future = self._pending.get(message.unique_id)
        if future is None or future.done():
            logger.warning(
                "%s: answer %s matches no pending call; dropped", self.id, message.unique_id
            )
            return
        future.set_result(message)

    async def _drain_inbox(self) -> None:
        try:
            if self._started is not None and not self._started.done():
                await asyncio.shield(self._started)
            while self._inbox:
                await self._handle_call(self._inbox.popleft())
        finally:
            self._worker = None

    async def _handle_call(self, msg: Call) -> None:
        if not message_handled.receivers:
            await self._answer_call(msg)
            return
        started = time.perf_counter()
        error_code = await self._answer_call(msg)
        message_handled.send_robust(
            sender=LevityChargePoint,
            charge_point=self,
            action=msg.action,
            duration=time.perf_counter() - started,
            error_code=error_code,
        )

    async def _answer_call(self, msg: Call) -> str | None:
        """Answer one CALL; return the CALLERROR code sent, or None for a CALLRESULT."""
        handler = handlers(type(self)).get(msg.action)
        if handler is None:
            return await self._send_error(msg, protocol.unknown_action_error(msg.action))
        deferred: list = []
        token = _deferred_after.set(deferred)
        try:
            protocol.validate(msg.action, msg.payload, lenient=self._lenient)
            result = await handler(self, **protocol.snake_case(msg.payload))
            payload = protocol.to_payload(result)
        except OCPPError as exc:
            logger.warning("%s: %s %s rejected: %s", self.id, msg.action, msg.unique_id, exc)
            return await self._send_error(msg, exc)
        except Exception:
            logger.exception("%s: %s %s failed", self.id, msg.action, msg.unique_id)
            return await self._send_error(
                msg, InternalError(description=f"{msg.action} could not be processed")
            )
        finally:
            _deferred_after.reset(token)
        await self._send(protocol.encode_call_result(msg.unique_id, payload))
        for hook, context in deferred:
            task = asyncio.create_task(self._run_hook(hook, context))
            self._after_tasks.add(task)
            task.add_done_callback(self._after_tasks.discard)
        return None

    async def _send_error(self, msg: Call, error: OCPPError) -> str:
        await self._send(protocol.encode_call_error(msg.unique_id, error))
        return error.code

    async def _send(self, message: str) -> None:
        await self._connection.send(message)

    # --- CS -> CP calls -------------------------------------------------------

    async def call(
        self,
        payload: Any,
        suppress: bool = True,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
        *,
        timeout: float | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Any:
        """Send a CS->CP request and return the charge point's call_result.

        As in the `ocpp` package: a CALLERROR returns None when ``suppress``, else
        raises the matching OCPPError; no answer in time raises asyncio.TimeoutError.
        One call is in flight per charge point at a time (OCPP-J); others wait.
        ``on_sent`` is called when the CALL is on the wire (after that wait).
        """
        action = type(payload).__name__
        request = protocol.to_payload(payload)
        if not skip_schema_validation:
            protocol.validate(action, request)
        unique_id = unique_id or str(uuid.uuid4())
        timeout = self._response_timeout if timeout is None else timeout
        if self._closed:
            raise ChargePointDisconnected(self.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with asyncio.timeout(timeout):
            async with self._call_lock:
                future = loop.create_future()
                self._pending[unique_id] = future
                try:
                    await self._send(protocol.encode_call(unique_id, action, request))
                    if on_sent is not None:
                        on_sent()
                    response = await asyncio.wait_for(future, max(deadline - loop.time(), 0))
                finally:
                    self._pending.pop(unique_id, None)
        if isinstance(response, CallError):
            logger.warning("%s: %s answered with CALLERROR %s", self.id, action, response)
            if suppress:
                return None
            raise response.to_exception()
        protocol.validate_answer(action, response.payload)  # always: a broken answer makes no call_result
        result_class = getattr(call_result, action)
        known = result_class.__dataclass_fields__
        data = protocol.snake_case(response.payload)
        return result_class(**{k: v for k, v in data.items() if k in known})

    # --- lifecycle ------------------------------------------------------------

    async def ensure_registered(self) -> None:
        """Find or register the charge point row (for sessions not made by the consumer)."""
        if self.charge_point_pk is None:
            self.charge_point_pk = await connections_writer.submit(
                services.Connection(
                    self.id,
                    self.remote_address,
                    _now(),
                    auto_register=True,
                    server_process=processes.current(),
                )
            )

    async def initialize_plugins(self) -> None:
        """Each plugin's ``initialize()``, isolated from errors and bounded in time."""
        await dispatch.run_lifecycle(self, "initialize")

    async def shutdown(self, close_code: int | None = None) -> None:
        """End the session: fail pending calls, finish AFTER hooks, clean up plugins."""
        if self._closed:
            return
        self._closed = True
        self.close_code = close_code
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChargePointDisconnected(self.id))
        if self._started is not None and not self._started.done():
            await _cancel({self._started})
        if self._worker is not None:
            await _cancel({self._worker})
        if self._after_tasks:
            _, pending = await asyncio.wait(
                set(self._after_tasks), timeout=settings.LEVITY_AFTER_HOOK_GRACE_SECONDS
            )
            if pending:
                logger.warning(
                    "%s: %d AFTER hook(s) still running at disconnect were cancelled",
                    self.id,
                    len(pending),
                )
                await _cancel(pending)
        await dispatch.run_lifecycle(self, "cleanup")

    async def close(self, code: int = 1000) -> None:
        await self._connection.close(code)

    # --- hooks ----------------------------------------------------------------

    async def _run_hook(self, hook: PluginHook, context: PluginContext) -> None:
        await dispatch.send_hook(self, hook, context)

    def _hooked(self, hook: PluginHook) -> bool:
        return hook in self._plugin_hooks or dispatch.has_app_receivers(HOOK_SIGNALS[hook])

    async def _process(
        self,
        before: PluginHook,
        after: PluginHook,
        message_data: dict[str, Any],
        core: Callable[[dict[str, Any], PluginContext], Awaitable[Any]],
    ) -> Any:
        """BEFORE hook -> core handler -> (answer sent) -> AFTER hook.

        The core works on the validated message; hooks get their own copy of it, so
        a hook that changes ``message_data`` cannot break what is stored. A decision
        of a BEFORE hook (``context.respond``) is applied by plugins.decisions.
        """
        hooked_before, hooked_after = self._hooked(before), self._hooked(after)
        if not (hooked_before or hooked_after):
            return await core(message_data, PluginContext(self, message_data, hook=before))
        context = PluginContext(self, copy.deepcopy(message_data), hook=before)
        if hooked_before:
            await self._run_hook(before, context)
            if context.decision is not None:
                logger.debug(
                    "%s: %s answered as decided by %s", self.id, before.action, context.decided_by
                )
        answer = await core(message_data, context)
        context.result = decisions.apply(before, answer, context.decision, context.decided_by)
        if hooked_after:
            deferred = _deferred_after.get()
            if deferred is None:
                await self._run_hook(after, context)
            else:
                deferred.append((after, context))
        return context.result

    def _db(self, func: Callable, *args, **kwargs) -> Awaitable[Any]:
        # Shared with other sessions' work: one thread hop and one commit per batch.
        return run_batched(func, self.charge_point_pk, *args, **kwargs)

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
        return await self._process(
            PluginHook.BEFORE_BOOT_NOTIFICATION,
            PluginHook.AFTER_BOOT_NOTIFICATION,
            data,
            self._boot_notification,
        )

    async def _boot_notification(
        self, data: dict, context: PluginContext
    ) -> call_result.BootNotification:
        now = _now()
        status = await boots_writer.submit(services.Boot(self.charge_point_pk, data, now))
        return call_result.BootNotification(
            current_time=protocol.format_timestamp(now),
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
        return call_result.Heartbeat(current_time=protocol.format_timestamp(_now()))

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
        await status_notifications_writer.submit(
            services.StatusReport(
                self.charge_point_pk,
                connector_id=data["connector_id"],
                status=data["status"],
                error_code=data["error_code"],
                info=data.get("info") or "",
                vendor_id=data.get("vendor_id") or "",
                vendor_error_code=data.get("vendor_error_code") or "",
                timestamp=protocol.parse_timestamp(timestamp) if timestamp else None,
                received_at=_now(),
            )
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
            info = await authorizations.submit(tx_services.Authorization(data["id_tag"], _now()))
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

    async def _start_transaction(
        self, data: dict, context: PluginContext
    ) -> call_result.StartTransaction:
        _check_connector_id(data["connector_id"], allow_zero=False)
        decided = decisions.id_tag_info(context.decision)
        started = await transaction_starts.submit(
            tx_services.TransactionStart(
                self.charge_point_pk,
                connector_id=data["connector_id"],
                id_tag=data["id_tag"],
                meter_start=data["meter_start"],
                timestamp=protocol.parse_timestamp(data["timestamp"]),
                reservation_id=data.get("reservation_id"),
                now=_now(),
                decided_id_tag_info=decided,
            )
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

    async def _stop_transaction(
        self, data: dict, context: PluginContext
    ) -> call_result.StopTransaction:
        stopped = await transaction_stops.submit(
            tx_services.TransactionStop(
                self.charge_point_pk,
                transaction_id=data["transaction_id"],
                meter_stop=data["meter_stop"],
                timestamp=protocol.parse_timestamp(data["timestamp"]),
                reason=data.get("reason"),
                id_tag=data.get("id_tag"),
                transaction_data=data.get("transaction_data"),
                now=_now(),
                decided_id_tag_info=decisions.id_tag_info(context.decision),
            )
        )
        # For AFTER_STOP_TRANSACTION receivers: "stopped", "corrected", "rebuilt", "already_stopped"
        # or "repeated", and the Transaction row.
        context.stop_outcome = stopped.outcome
        context.transaction = stopped.transaction
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
        await meter_values_writer.submit(
            tx_services.MeterValuesRequest(
                charge_point_pk=self.charge_point_pk,
                connector_id=data["connector_id"],
                transaction_id=data.get("transaction_id"),
                meter_value=data["meter_value"],
                now=_now(),
            )
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


async def _cancel(tasks: set[asyncio.Task]) -> None:
    """Cancel tasks and wait until they have ended."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


def _check_connector_id(connector_id: int, *, allow_zero: bool = True) -> None:
    if connector_id < 0 or (connector_id == 0 and not allow_zero):
        raise PropertyConstraintViolationError(
            description=f"connectorId {connector_id} is not a valid connector",
            details={"field": "connectorId"},
        )
