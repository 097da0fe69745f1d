"""Sending the hook signals, and running the session's ChargePointPlugin instances.

The plugins app connects one receiver per hook signal, ``run_session_plugins``,
which runs the plugins of the charge point at hand in their configured order.
Per-connection plugin instances are not connected as receivers one by one: that
would make every send scan every connection's receivers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal
from ocpp.exceptions import OCPPError

from levity_site.conf import settings

from .base import ChargePointPlugin, PluginContext, PluginHook, current_plugin
from .signals import (
    HOOK_SIGNALS,
    charge_point_connected,
    charge_point_disconnected,
    data_transfer_received,
)

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint

logger = logging.getLogger("levity.plugins")

BoundHooks = dict[PluginHook, list[tuple[ChargePointPlugin, Any]]]


def bind_hooks(plugins: list[ChargePointPlugin]) -> BoundHooks:
    """Each hook's (plugin, bound method) pairs, in plugin order, resolved once per session.

    A plugin whose ``hooks()`` fails or names something wrong is logged with its
    own logger and skipped for that hook; the session goes on.
    """
    bound: BoundHooks = {}
    for plugin in plugins:
        for hook, method in hook_methods(plugin, strict=False):
            bound.setdefault(hook, []).append((plugin, method))
    return bound


def hook_methods(plugin: ChargePointPlugin, *, strict: bool) -> list[tuple[PluginHook, Any]]:
    """(hook, bound method) pairs of one plugin; raise ValueError instead of logging if strict."""
    problems: list[str] = []
    pairs: list[tuple[PluginHook, Any]] = []
    try:
        declared = plugin.hooks()
        items = list(declared.items())
    except Exception as exc:
        if strict:
            raise ValueError(f"{type(plugin).__name__}.hooks() failed: {exc!r}") from exc
        plugin.logger.exception("%s.hooks() failed; its hooks are not run", type(plugin).__name__)
        return []
    for hook, method_name in items:
        try:
            hook = PluginHook(hook)
        except ValueError:
            problems.append(f"{hook!r} is not a PluginHook")
            continue
        method = getattr(plugin, method_name, None) if isinstance(method_name, str) else None
        if not callable(method):
            problems.append(f"{hook.name} names {method_name!r}, which is not a method of it")
            continue
        if not inspect.iscoroutinefunction(method):
            problems.append(f"{hook.name} names {method_name!r}, which is not an async method")
            continue
        pairs.append((hook, method))
    for problem in problems:
        if strict:
            raise ValueError(f"{type(plugin).__name__}.hooks(): {problem}")
        plugin.logger.error("%s.hooks(): %s; skipped", type(plugin).__name__, problem)
    return pairs


def hook_timeout(hook: PluginHook) -> float:
    """The time bound of one plugin's hook: BEFORE hooks delay the answer, so theirs is short."""
    if hook.is_before:
        return settings.LEVITY_BEFORE_HOOK_TIMEOUT
    return settings.LEVITY_PLUGIN_HOOK_TIMEOUT


def has_app_receivers(signal: Signal) -> bool:
    """True when a Django app connected a receiver besides the plugin runner."""
    return len(signal.receivers) > 1


async def send_hook(charge_point: LevityChargePoint, hook: PluginHook, context: PluginContext) -> None:
    """Send a hook's signal to every receiver, isolated from their errors and hangs.

    ``asend_robust`` logs a receiver's exception (logger ``django.dispatch``) and goes
    on. The session's plugins are bounded one by one in ``run_session_plugins``; the
    send as a whole is bounded too, so that a hanging app receiver cannot stall the
    session.
    """
    context.hook = hook
    signal = HOOK_SIGNALS[hook]
    if not has_app_receivers(signal):
        # Only the plugin runner: call it directly (no gather, no extra tasks), its
        # per-plugin bounds and isolation are the same.
        await run_session_plugins(type(charge_point), charge_point, context, hook)
        return
    own = len(charge_point._plugin_hooks.get(hook, ()))
    bound = hook_timeout(hook) * (own + 1)
    try:
        async with asyncio.timeout(bound):
            await signal.asend_robust(
                sender=type(charge_point), charge_point=charge_point, context=context, hook=hook
            )
    except TimeoutError:
        logger.error(
            "%s: receivers of %s were still running after %ss and were cancelled",
            charge_point.id,
            hook.value,
            bound,
        )


async def run_session_plugins(
    sender: Any, charge_point: LevityChargePoint, context: PluginContext, hook: PluginHook, **kwargs
) -> None:
    """The one receiver that runs a session's plugins for a hook, in configured order.

    Each plugin runs in its own try/except with a time bound, and logs with its own
    logger: one plugin's failure or hang never reaches the others or the answer.
    """
    plugin_hooks = getattr(charge_point, "_plugin_hooks", None)
    if not plugin_hooks or hook not in plugin_hooks:
        return
    timeout = hook_timeout(hook)
    for plugin, method in plugin_hooks[hook]:
        token = current_plugin.set(type(plugin).__name__)
        try:
            async with asyncio.timeout(timeout):
                await method(context)
        except TimeoutError:
            plugin.logger.error(
                "%s hook for %s took longer than %ss and was cancelled",
                hook.name,
                charge_point.id,
                timeout,
            )
        except Exception:
            plugin.logger.exception("%s hook failed for %s", hook.name, charge_point.id)
        finally:
            current_plugin.reset(token)


for _hook, _signal in HOOK_SIGNALS.items():
    _signal.connect(run_session_plugins, dispatch_uid=f"levity.plugins.{_hook.value}")


async def run_lifecycle(charge_point: LevityChargePoint, method_name: str) -> None:
    """Run every plugin's ``initialize`` or ``cleanup``, each isolated and time-bounded."""
    timeout = settings.LEVITY_PLUGIN_HOOK_TIMEOUT
    for plugin in charge_point.plugins:
        try:
            await asyncio.wait_for(getattr(plugin, method_name)(charge_point), timeout)
        except TimeoutError:
            plugin.logger.error(
                "%s for %s took longer than %ss and was cancelled",
                method_name,
                charge_point.id,
                timeout,
            )
        except Exception:
            plugin.logger.exception("%s failed for %s", method_name, charge_point.id)


async def send_connected(charge_point: LevityChargePoint) -> None:
    """``charge_point_connected``, once the session's plugins are initialized."""
    if charge_point_connected.receivers:
        await charge_point_connected.asend_robust(sender=type(charge_point), charge_point=charge_point)


async def send_disconnected(charge_point: LevityChargePoint) -> None:
    """``charge_point_disconnected``, once the session's plugins are cleaned up."""
    if charge_point_disconnected.receivers:
        await charge_point_disconnected.asend_robust(
            sender=type(charge_point), charge_point=charge_point, close_code=charge_point.close_code
        )


async def data_transfer_answer(
    charge_point: LevityChargePoint, vendor_id: str, message_id: str | None, data: str | None
) -> dict[str, Any]:
    """The first answer a data_transfer_received receiver gives, or UnknownVendorId."""
    if not data_transfer_received.receivers:
        return {"status": "UnknownVendorId"}
    try:
        responses = await asyncio.wait_for(
            data_transfer_received.asend_robust(
                sender=type(charge_point),
                charge_point=charge_point,
                vendor_id=vendor_id,
                message_id=message_id,
                data=data,
            ),
            settings.LEVITY_BEFORE_HOOK_TIMEOUT,
        )
    except TimeoutError:
        logger.error(
            "%s: DataTransfer receivers did not answer within %ss",
            charge_point.id,
            settings.LEVITY_BEFORE_HOOK_TIMEOUT,
        )
        return {"status": "UnknownVendorId"}
    # OCPP 1.6's schemas: imported here, not when the plugins app loads in every manage.py command.
    from chargepoints.ocpp16 import protocol

    for receiver, response in responses:
        if not isinstance(response, dict) or not response.get("status"):
            continue  # no answer from this receiver (None, or its logged exception)
        try:
            protocol.validate("DataTransfer", protocol.to_payload(response), response=True)
        except OCPPError as exc:
            logger.error(
                "%s: DataTransfer answer %r of %s ignored: %s",
                charge_point.id,
                response,
                getattr(receiver, "__qualname__", receiver),
                exc.description,
            )
            continue
        return response
    return {"status": "UnknownVendorId"}
