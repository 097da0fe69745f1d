"""The OCPP-J session every protocol version shares: framing, calls, inbox, hooks, lifecycle.

A protocol version subclasses ``Session`` with its ``@on`` handlers and names its
own validation module (``protocol``: ``validate``, ``unknown_action_error``,
``frame_error``, ``snake_case``, ``to_payload``) and its ``call_results`` (the call_result classes).
``Session`` is Levity's own class: it does not inherit the `ocpp` package's
``ChargePoint``, whose ``start()``, ``call()`` and route map it would have to
break; from `ocpp` it takes the ``@on`` decorator, the message classes and the
schemas.

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
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ocpp.exceptions import GenericError, InternalError, OCPPError, ProtocolError, SecurityError
from ocpp.messages import Call, CallError

from levity_site.conf import settings
from plugins import decisions, dispatch
from plugins.base import ChargePointPlugin, PluginContext, PluginHook
from plugins.signals import HOOK_SIGNALS, message_handled

from .. import services
from . import framing, limits, writer

if TYPE_CHECKING:
    from ..ocpp16.session import LevityChargePoint  # the session plugins are given

logger = logging.getLogger(__name__)

# AFTER hooks collected while a handler runs inside the session, launched once the
# answer is on the wire. Unset when a handler is called directly (tests): then
# AFTER hooks run before the handler returns.
_deferred_after: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "levity_deferred_after", default=None
)


class ChargePointDisconnected(Exception):
    """The charge point went away before answering."""


class Refused(Exception):
    """The onboarding policy refused the charge point (unknown, auto-registration off)."""


@functools.cache
def handlers(cls: type) -> dict[str, Callable[..., Any]]:
    """A session class's ``@on`` handler functions by action (a plain str).

    Collected through the MRO (mixins and base classes too), by name as ocpp's
    route map is, so that a subclass's override of a handler method (decorated
    again or not) is the one called.
    """
    names: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            action = getattr(member, "_on_action", None)
            if action is not None:
                names[getattr(action, "value", action)] = name
    return {action: getattr(cls, name) for action, name in names.items()}


def _refuse_after_handlers(cls: type) -> None:
    for klass in cls.__mro__:
        for name, member in vars(klass).items():
            if getattr(member, "_after_action", None) is not None:
                raise TypeError(
                    f"{cls.__qualname__}.{name} is an ocpp @after handler, which Levity's session "
                    "does not run: use an AFTER hook (a ChargePointPlugin hook or an after_* "
                    "signal of plugins.signals), which runs once the answer is on the wire"
                )


class Session:
    """One connected charge point, whatever its OCPP version.

    ``connection`` is anything with ``async send(str)`` and ``async close(code)``
    (and, for ``start()``, async iteration over frames): the Channels consumer, a
    ``websockets`` connection, a test fake.
    """

    #: The version's validation, error codes and naming (e.g. chargepoints.ocpp16.protocol).
    protocol: ClassVar[ModuleType]
    #: The version's call_result classes, by action name.
    call_results: ClassVar[ModuleType]
    #: The WebSocket subprotocol of the version.
    subprotocol: ClassVar[str]
    #: What the last BootNotification was answered (at connect: the stored status).
    #: A charge point that is not Accepted may send BootNotification only.
    registration_status: str = "Accepted"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_after_handlers(cls)

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
        row_connected_at: datetime | None = None,
    ) -> None:
        self.id = id
        self._connection = connection
        self._response_timeout = response_timeout or settings.LEVITY_CALL_TIMEOUT
        self._call_lock = asyncio.Lock()
        self.plugins: list[ChargePointPlugin] = list(plugins or ())
        self.remote_address = remote_address
        self.charge_point_pk = charge_point_pk
        #: The ``connected_at`` this session's connect wrote on the charge point's row.
        self.row_connected_at = row_connected_at
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
        self._replaced = False
        self.call_rate = limits.CallRate.from_settings()
        self._inbox_room: asyncio.Event | None = None
        #: LEVITY_MAX_QUEUED_CALLS, read once per session rather than once per frame.
        self._max_queued_calls = settings.LEVITY_MAX_QUEUED_CALLS
        self._closing_over_rate = False
        self._closing = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    @classmethod
    def answered_actions(cls) -> set[str]:
        """The actions of the CALLs this class answers (its ``@on`` handlers)."""
        return set(handlers(cls))  # type: ignore[arg-type]  # mypy: a class is Hashable

    @property
    def connection(self) -> Any:
        """What frames are sent to (the consumer, a websockets connection, a test fake)."""
        return self._connection

    @property
    def accepts_writes(self) -> bool:
        """False once the session ends, is being closed, or a newer session replaced it."""
        return not (self._closed or self._replaced or self._closing)

    def mark_replaced(self) -> None:
        """A newer session of the same charge point took over: this one's writes are dropped."""
        self._replaced = True

    # --- receive path ---------------------------------------------------------

    async def start(self) -> None:
        """Serve a ``websockets``-style connection (the spec's third way).

        Registered in chargepoints.session.registry as the consumer's sessions are, so
        that commands (admin, API, manage.py) reach it and its last-seen times are
        written; with REDIS_URL, in its charge point's channel-layer group too, so that
        commands sent through other server processes reach it. An unknown charge
        point is refused as the consumer refuses it (LEVITY_AUTO_REGISTER).
        """
        from channels.layers import get_channel_layer

        from . import commands, groups, registry

        try:
            await self.ensure_registered()
        except Refused:
            await self._connection.close(registry.CLOSE_REFUSED)
            return
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
            await dispatch.send_disconnected(cast("LevityChargePoint", self))

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
        await dispatch.send_connected(cast("LevityChargePoint", self))

    async def receive_frame(self, raw: str | bytes) -> None:
        """Route one frame; returns at once (CALLs are queued for the worker)."""
        self.last_seen_at = time.time()
        try:
            if not isinstance(raw, str):
                raise framing.FrameError("OCPP-J uses text frames, not binary")
            message = framing.decode(raw)
        except framing.FrameError as exc:
            error = self.protocol.frame_error(exc.description)
            logger.warning("%s: bad frame %.200r: %s", self.id, raw, exc.description)
            await self._send(framing.encode_call_error(exc.unique_id, error))
            if message_handled.receivers:
                message_handled.send_robust(
                    sender=type(self), charge_point=self, action=None, duration=None, error_code=error.code
                )
            return
        if isinstance(message, Call):
            if self._closed:
                return
            if not self.call_rate.admit():
                await self._refuse_over_rate(message)
                return
            self._inbox.append(message)
            if self._worker is None:
                self._worker = asyncio.create_task(self._drain_inbox())
            return
        future = self._pending.get(message.unique_id)
        if future is None or future.done():
            logger.warning("%s: answer %s matches no pending call; dropped", self.id, message.unique_id)
            return
        future.set_result(message)

    async def _drain_inbox(self) -> None:
        """The worker: answer the queued CALLs in order; ends when the inbox is empty.

        It never ends with an exception: a connection that closed under it ends it,
        and the CALLs still queued are dropped (nobody could read their answers).
        """
        try:
            if self._started is not None and not self._started.done():
                await asyncio.shield(self._started)
            while self._inbox and self.accepts_writes:
                call = self._inbox.popleft()
                if self._inbox_room is not None:
                    self._inbox_room.set()
                await self._handle_call(call)
        except Exception as exc:
            # Sending failed: the charge point closed the connection meanwhile (autobahn
            # refuses to send once a Close frame came), the disconnect follows.
            logger.info(
                "%s: the connection closed while answering (%s); %d queued CALL(s) dropped",
                self.id,
                type(exc).__name__,
                len(self._inbox),
            )
        finally:
            self._inbox.clear()
            self._worker = None

    async def _handle_call(self, msg: Call) -> None:
        if not message_handled.receivers:
            await self._answer_call(msg)
            return
        started = time.perf_counter()
        error_code = await self._answer_call(msg)
        message_handled.send_robust(
            sender=type(self),
            charge_point=self,
            action=msg.action,
            duration=time.perf_counter() - started,
            error_code=error_code,
        )

    async def _answer_call(self, msg: Call) -> str | None:
        """Answer one CALL; return the CALLERROR code sent, or None for a CALLRESULT."""
        protocol = self.protocol
        if self.registration_status != "Accepted" and msg.action != "BootNotification":
            # Nothing of a charge point the operator has not accepted is stored.
            logger.warning("%s: %s refused: registration %s", self.id, msg.action, self.registration_status)
            return await self._send_error(
                msg,
                SecurityError(
                    description=f"{msg.action} refused: the registration is {self.registration_status}"
                ),
            )
        handler = handlers(type(self)).get(msg.action)  # type: ignore[arg-type]  # mypy: a class is Hashable
        if handler is None:
            return await self._send_error(msg, protocol.unknown_action_error(msg.action))
        deferred: list = []
        token = _deferred_after.set(deferred)
        try:
            limits.check_meter_values(msg.action, msg.payload)
            if not getattr(handler, "_skip_schema_validation", False):
                protocol.validate(msg.action, msg.payload, lenient=self._lenient)
            result = handler(self, **protocol.snake_case(msg.payload))
            if inspect.isawaitable(result):  # ocpp's @on allows a synchronous handler
                result = await result
            payload = protocol.to_payload(result)
        except writer.Dropped:
            return None  # the session was replaced meanwhile: nothing to answer
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
        if not self.accepts_writes:
            return None  # being closed: the charge point will not read the answer
        await self._send(framing.encode_call_result(msg.unique_id, payload))
        for hook, context in deferred:
            task = asyncio.create_task(self._run_hook(hook, context))
            self._after_tasks.add(task)
            task.add_done_callback(self._after_tasks.discard)
        return None

    async def _refuse_over_rate(self, msg: Call) -> None:
        """Answer a CALL past the charge point's rate; close the session when it stays past it."""
        rate = self.call_rate
        await self._send_error(msg, GenericError(description=limits.over_rate_description(rate)))
        if rate.sustained() and not self._closed and not self._closing_over_rate:
            self._closing_over_rate = True
            logger.warning(
                "%s: closed (1008): more than %g messages a second for %g s",
                self.id,
                rate.rate,
                rate.close_after,
            )
            await self.close(limits.CLOSE_POLICY_VIOLATION)

    async def wait_for_room(self) -> None:
        """Return when this session may take another frame (its receiver waits meanwhile).

        While CALLs wait for the worker past ``LEVITY_MAX_QUEUED_CALLS``, and for the
        next token after a CALL was refused for the rate: the frames then wait in the
        server, which stops reading the socket (levity_site.protocol_limits).
        """
        delay = self.call_rate.delay() if self.call_rate.refusing_since is not None else 0
        if delay > 0:
            await asyncio.sleep(delay)
        while len(self._inbox) >= self._max_queued_calls and not self._closed:
            if self._inbox_room is None:
                self._inbox_room = asyncio.Event()
            self._inbox_room.clear()
            await self._inbox_room.wait()

    async def _send_error(self, msg: Call, error: OCPPError) -> str:
        await self._send(framing.encode_call_error(msg.unique_id, error))
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
        raises the matching OCPPError; no answer in time raises TimeoutError. One
        call is in flight per charge point at a time (OCPP-J); others wait, within
        the same ``timeout``. ``on_sent`` is called when the CALL is on the wire.
        """
        protocol = self.protocol
        action = type(payload).__name__
        request = protocol.to_payload(payload)
        if not skip_schema_validation:
            protocol.validate(action, request)
        unique_id = unique_id or str(uuid.uuid4())
        if self._closed:
            raise ChargePointDisconnected(self.id)
        async with asyncio.timeout(self._response_timeout if timeout is None else timeout):
            async with self._call_lock:
                future = asyncio.get_running_loop().create_future()
                self._pending[unique_id] = future
                try:
                    await self._send(framing.encode_call(unique_id, action, request))
                    if on_sent is not None:
                        on_sent()
                    response = await future
                finally:
                    self._pending.pop(unique_id, None)
        if isinstance(response, CallError):
            logger.warning("%s: %s answered with CALLERROR %s", self.id, action, response)
            if suppress:
                return None
            raise response.to_exception()
        if not skip_schema_validation:
            protocol.validate_answer(action, response.payload)  # InvalidAnswer
        result_class = getattr(self.call_results, action)
        known = result_class.__dataclass_fields__
        data = protocol.snake_case(response.payload)
        try:
            return result_class(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:  # validation skipped, and a required field is missing
            protocol.validate_answer(action, response.payload)  # the schema's reason, as InvalidAnswer
            raise protocol.InvalidAnswer(
                action, response.payload, ProtocolError(description=str(exc))
            ) from None

    # --- lifecycle ------------------------------------------------------------

    async def ensure_registered(self, policy: str | None = None, *, trusted: bool = False) -> None:
        """Find the charge point's row, or register it, for a session not made by the consumer.

        The onboarding policy applies as at the consumer (LEVITY_UNKNOWN_CHARGE_POINTS):
        an unknown charge point is registered Pending or Accepted, or refused (Refused).
        ``policy`` overrides the setting (``plugins.testing`` registers as "accept").
        Such a session has no HTTP upgrade to authenticate, so it serves only charge
        points whose security profile -- for an unknown id, the default one -- is 0;
        unless the caller vouches for the charge point (``trusted``: plugins.testing's
        test charge points), which is then admitted whatever its profile.
        """
        from . import authentication, processes, registry

        if self.charge_point_pk is not None:
            return
        if policy is None:  # LEVITY_AUTO_REGISTER=false means refuse, whatever the policy
            policy = settings.LEVITY_UNKNOWN_CHARGE_POINTS if settings.LEVITY_AUTO_REGISTER else "refuse"
        now = _now()
        registers_unknown_as = authentication.registers_unknown_as(policy)
        connected = await registry.connections_writer.submit(
            services.Connection(
                self.id,
                self.remote_address,
                now,
                server_process=processes.current(),
                registers_unknown_as=registers_unknown_as,
                proven=trusted,
            )
        )
        if not isinstance(connected, services.Connected):
            if connected is not None:
                reason = f"its security profile {connected.effective_profile} needs the server's upgrade"
            elif not registers_unknown_as:
                reason = "unknown, and the onboarding policy refuses unknown charge points"
            else:
                profile = settings.LEVITY_DEFAULT_SECURITY_PROFILE
                reason = f"unknown, and the default security profile {profile} needs the server's upgrade"
            logger.warning("Refused %s: %s", self.id, reason)
            raise Refused(self.id)
        self.charge_point_pk, self.row_connected_at = connected.pk, now
        self.registration_status = connected.registration_status

    async def initialize_plugins(self) -> None:
        """Each plugin's ``initialize()``, isolated from errors and bounded in time."""
        await dispatch.run_lifecycle(cast("LevityChargePoint", self), "initialize")

    async def shutdown(self, close_code: int | None = None) -> None:
        """End the session: fail pending calls, stop the worker, finish AFTER hooks, clean up plugins.

        CALLs still queued are dropped, and writes not yet in a batch with them.
        """
        if self._closed:
            return
        self._closed = True
        self.close_code = close_code
        self._inbox.clear()
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
        await dispatch.run_lifecycle(cast("LevityChargePoint", self), "cleanup")

    async def close(self, code: int = 1000) -> None:
        """Close the connection; CALLs not answered yet are not answered (nor written)."""
        self._closing = True
        await self._connection.close(code)

    # --- hooks ----------------------------------------------------------------

    async def _run_hook(self, hook: PluginHook, context: PluginContext) -> None:
        await dispatch.send_hook(cast("LevityChargePoint", self), hook, context)

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
            return await core(
                message_data, PluginContext(cast("LevityChargePoint", self), message_data, hook=before)
            )
        context = PluginContext(cast("LevityChargePoint", self), copy.deepcopy(message_data), hook=before)
        if hooked_before:
            await self._run_hook(before, context)
            if context.decision is not None:
                logger.debug("%s: %s answered as decided by %s", self.id, before.action, context.decided_by)
        answer = await core(message_data, context)
        context.result = decisions.apply(before, answer, context.decision, context.decided_by)
        if hooked_after:
            deferred = _deferred_after.get()
            if deferred is None:
                await self._run_hook(after, context)
            else:
                deferred.append((after, context))
        return context.result

    # --- database ---------------------------------------------------------------

    def _db(self, func: Callable, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """``func(charge_point_pk, *args, **kwargs)`` in the next batch of the write path."""
        return writer.run_for(self, func, self.charge_point_pk, *args, **kwargs)

    def _write(self, write: writer.Write, request: Any) -> Awaitable[Any]:
        """``request`` of ``write`` in the next batch; dropped if this session ends first."""
        return write.submit(request, self)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _cancel(tasks: set[asyncio.Task]) -> None:
    """Cancel tasks and wait until they have ended."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
