"""Testing support for plugin authors: a charge point session without a network.

::

    from plugins.testing import create_test_charge_point, register_temporarily

    @pytest.mark.django_db(transaction=True)
    async def test_my_plugin():
        cp = await create_test_charge_point("TEST001", plugins=[MyCustomPlugin()])
        result = await cp.on_boot_notification("TestVendor", "TestModel")
        assert result.status == "Accepted"
        await cp.shutdown()

Handlers called directly (``cp.on_boot_notification(...)``) run BEFORE hooks, the
core handler and AFTER hooks before they return. ``cp.connection`` is a
``FakeConnection``: it records every frame the session sends, and answers the
session's calls to the charge point as a test tells it to. Tests use the real
database, committed: mark them ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

from . import signals
from .base import ChargePointPlugin, PluginHook

_unique_ids = itertools.count(1)


@dataclass
class SentCall:
    """A CALL the session sent to the charge point."""

    unique_id: str
    action: str
    payload: dict[str, Any]


class FakeConnection:
    """Stands in for the WebSocket of a charge point.

    ``sent`` holds every frame the session sent, decoded (``[3, id, {...}]`` and so
    on). Calls to the charge point stay unanswered until the test answers them with
    ``reply()``, or until an ``answer()`` rule answers them as they are sent.
    """

    def __init__(self) -> None:
        self.sent: list[list[Any]] = []
        self.closed_with: int | None = None
        self.charge_point: Any = None
        self._rules: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._new_frame: asyncio.Condition | None = None

    # --- what the session does to its connection ---------------------------------

    async def send(self, message: str) -> None:
        frame = json.loads(message)
        self.sent.append(frame)
        await self._notify()
        if frame[0] == 2 and frame[2] in self._rules:
            # The session registered the call before sending it: answer at once.
            await self._deliver(frame[1], self._rules[frame[2]](frame[3]))

    async def close(self, code: int = 1000) -> None:
        self.closed_with = code

    # --- what a test does ---------------------------------------------------------

    def answer(self, action: str, payload: Any = None, *, error: str | None = None) -> None:
        """Answer every later ``action`` call at once: with ``payload`` (a call_result
        object, a camelCase dict, or a function of the request payload returning
        one) or, given ``error`` (e.g. ``"NotSupported"``), with a CALLERROR."""
        if error is not None:
            self._rules[action] = lambda request: _CallError(error)
        elif callable(payload) and not hasattr(payload, "__dataclass_fields__"):
            self._rules[action] = payload
        else:
            self._rules[action] = lambda request: payload

    def calls(self, action: str | None = None) -> list[SentCall]:
        """The calls the session sent to the charge point (of one action, if given)."""
        return [
            SentCall(frame[1], frame[2], frame[3])
            for frame in self.sent
            if frame[0] == 2 and (action is None or frame[2] == action)
        ]

    async def wait_for_call(self, action: str, timeout: float = 5.0) -> SentCall:
        """The first call of ``action`` the session sends (or has sent)."""
        return await self._wait(lambda: next(iter(self.calls(action)), None), timeout)

    async def reply(self, sent_call: SentCall, payload: Any) -> None:
        """Answer a call as the charge point would (CALLRESULT)."""
        await self._deliver(sent_call.unique_id, payload)

    async def reply_error(self, sent_call: SentCall, code: str, description: str = "") -> None:
        """Answer a call with a CALLERROR."""
        await self._deliver(sent_call.unique_id, _CallError(code, description))

    async def call_from_charge_point(
        self, action: str, payload: dict[str, Any], timeout: float = 5.0
    ) -> list[Any]:
        """Send a CALL as the charge point, through the session's real receive path,
        and return the frame it answers with (``[3, id, {...}]`` or ``[4, id, ...]``).

        AFTER hooks then run as tasks, after the answer: ``await after_hooks_done(cp)``.
        """
        unique_id = f"cp-{next(_unique_ids)}"
        await self.charge_point.receive_frame(json.dumps([2, unique_id, action, payload]))
        return await self._wait(
            lambda: next((f for f in self.sent if f[0] in (3, 4) and f[1] == unique_id), None),
            timeout,
        )

    # --- internals ------------------------------------------------------------------

    async def _deliver(self, unique_id: str, answer: Any) -> None:
        if isinstance(answer, _CallError):
            frame = [4, unique_id, answer.code, answer.description, {}]
        else:
            from chargepoints.ocpp16 import protocol

            frame = [3, unique_id, protocol.to_payload(answer) if answer is not None else {}]
        await self.charge_point.receive_frame(json.dumps(frame))

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._new_frame is None:
            self._new_frame = asyncio.Condition()
        return self._new_frame

    async def _wait(self, find: Callable[[], Any], timeout: float) -> Any:
        condition = self._condition()

        async def wait() -> Any:
            async with condition:
                while (found := find()) is None:
                    await condition.wait()
                return found

        return await asyncio.wait_for(wait(), timeout)


@dataclass
class _CallError:
    code: str
    description: str = ""


async def create_test_charge_point(
    charge_point_id: str = "TEST001",
    db: Any = None,
    *,
    plugins: list[ChargePointPlugin] | None = None,
    connection: Any = None,
    **kwargs: Any,
):
    """A registered, started LevityChargePoint on a FakeConnection (``cp.connection``).

    ``db`` is accepted and ignored (older plugin suites pass a database
    connection): the database is Django's. The plugins' ``initialize()`` has run when this returns; end the
    session with ``await cp.shutdown()`` to run their ``cleanup()``.
    """
    from chargepoints.ocpp16.session import LevityChargePoint

    connection = connection if connection is not None else FakeConnection()
    charge_point = LevityChargePoint(charge_point_id, connection, plugins=plugins, **kwargs)
    if isinstance(connection, FakeConnection):
        connection.charge_point = charge_point
    await charge_point.ensure_registered(policy="accept", trusted=True)
    await charge_point.begin()
    return charge_point


async def after_hooks_done(charge_point: Any, timeout: float = 5.0) -> None:
    """Wait until the AFTER hooks the session started as tasks have finished."""
    deadline = asyncio.get_running_loop().time() + timeout
    while charge_point._after_tasks or charge_point._worker is not None:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("AFTER hooks still running")
        if charge_point._after_tasks:
            await asyncio.wait(set(charge_point._after_tasks), timeout=timeout)
        else:
            await asyncio.sleep(0.01)


def _signal(hook_or_signal: PluginHook | str | Signal) -> Signal:
    if isinstance(hook_or_signal, Signal):
        return hook_or_signal
    if isinstance(hook_or_signal, str) and not isinstance(hook_or_signal, PluginHook):
        named = getattr(signals, hook_or_signal, None)
        if isinstance(named, Signal):
            return named
    try:
        return signals.HOOK_SIGNALS[PluginHook(hook_or_signal)]
    except ValueError:
        raise ValueError(f"{hook_or_signal!r} is neither a PluginHook nor a signal") from None


@contextlib.contextmanager
def register_temporarily(
    hook_or_signal: PluginHook | str | Signal | list[tuple[Any, Callable]],
    receiver: Callable | None = None,
    *,
    sender: Any = None,
) -> Iterator[None]:
    """Connect a receiver to a hook signal for the duration of a ``with`` block.

    ``hook_or_signal`` is a PluginHook, a signal name from plugins.signals
    (``"before_authorize"``, ``"charge_point_connected"``...) or a Signal; or a list
    of ``(hook_or_signal, receiver)`` pairs, as with Wagtail's
    ``hooks.register_temporarily``.
    """
    pairs: list[tuple[Any, Callable]]
    if receiver is not None:
        pairs = [(hook_or_signal, receiver)]
    elif isinstance(hook_or_signal, list):
        pairs = hook_or_signal
    else:
        raise TypeError("register_temporarily() takes a receiver, or a list of (hook, receiver) pairs")
    connected: list[tuple[Signal, str]] = []
    try:
        for target, function in pairs:
            signal = _signal(target)
            uid = f"levity.testing.{id(function)}.{next(_unique_ids)}"
            signal.connect(function, sender=sender, weak=False, dispatch_uid=uid)
            connected.append((signal, uid))
        yield
    finally:
        for signal, uid in connected:
            signal.disconnect(sender=sender, dispatch_uid=uid)
