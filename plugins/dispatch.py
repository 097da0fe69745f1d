"""Running the session's ChargePointPlugin instances through the hook signals."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.dispatch import Signal, receiver

from .base import ChargePointPlugin, DecisionConflict, PluginContext, PluginHook
from .signals import HOOK_SIGNALS, data_transfer_received

if TYPE_CHECKING:
    from chargepoints.handlers import LevityChargePoint

logger = logging.getLogger(__name__)

BoundHooks = dict[PluginHook, list[tuple[ChargePointPlugin, Any]]]


def bind_hooks(plugins: list[ChargePointPlugin]) -> BoundHooks:
    """Each hook's (plugin, bound method) pairs, in plugin order, resolved once per session."""
    bound: BoundHooks = {}
    for plugin in plugins:
        for hook, method_name in plugin.hooks().items():
            hook = PluginHook(hook)
            method = getattr(plugin, method_name, None)
            if method is None:
                plugin.logger.error(
                    "%s.hooks() names %r for %s, but it has no such method",
                    type(plugin).__name__,
                    method_name,
                    hook.name,
                )
                continue
            bound.setdefault(hook, []).append((plugin, method))
    return bound


def has_app_receivers(signal: Signal) -> bool:
    """True when a Django app connected a receiver besides the plugin runner."""
    return len(signal.receivers) > 1


async def run_session_plugins(
    sender: Any, charge_point: LevityChargePoint, context: PluginContext, hook: PluginHook, **kwargs
) -> None:
    """The one receiver that runs a session's plugins for a hook, in configured order.

    Each plugin runs in its own try/except with a time bound, and logs with its own
    logger: one plugin's failure or hang never reaches the others or the answer.
    """
    timeout = (
        settings.LEVITY_BEFORE_HOOK_TIMEOUT if hook.is_before else settings.LEVITY_PLUGIN_HOOK_TIMEOUT
    )
    for plugin, method in charge_point._plugin_hooks.get(hook, ()):
        try:
            await asyncio.wait_for(_call_hook(plugin, method, context), timeout)
        except TimeoutError:
            plugin.logger.error(
                "%s hook for %s took longer than %ss and was cancelled",
                hook.name,
                charge_point.id,
                timeout,
            )
        except Exception:
            plugin.logger.exception("%s hook failed for %s", hook.name, charge_point.id)


async def _call_hook(plugin: ChargePointPlugin, method: Any, context: PluginContext) -> None:
    decided_before = context.decision
    try:
        await method(context)
    except DecisionConflict as exc:
        plugin.logger.warning("decision ignored: %s", exc)
        return
    if context.decision is not None and decided_before is None and context.decided_by == "unknown":
        context.decided_by = type(plugin).__name__


for _hook, _signal in HOOK_SIGNALS.items():
    _signal.connect(run_session_plugins, dispatch_uid=f"levity.plugins.{_hook.value}")


async def data_transfer_answer(
    charge_point: LevityChargePoint, vendor_id: str, message_id: str | None, data: str | None
) -> dict[str, Any]:
    """The first answer a data_transfer_received receiver gives, or UnknownVendorId."""
    if not data_transfer_received.receivers:
        return {"status": "UnknownVendorId"}
    responses = await data_transfer_received.asend_robust(
        sender=type(charge_point),
        charge_point=charge_point,
        vendor_id=vendor_id,
        message_id=message_id,
        data=data,
    )
    for recv, response in responses:
        if isinstance(response, Exception):
            logger.error("DataTransfer receiver %r failed: %s", recv, response)
        elif isinstance(response, dict) and response.get("status"):
            return response
    return {"status": "UnknownVendorId"}
