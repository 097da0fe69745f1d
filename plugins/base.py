"""The plugin API: ChargePointPlugin, PluginHook and PluginContext.

These names, the hook names and their semantics are the public plugin API (with the
hook signals of plugins.signals and the helpers of plugins.testing); docs/plugins.md
describes it. Changes to it follow PLUGIN_API_VERSION.
"""

from __future__ import annotations

import contextvars
import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint

logger = logging.getLogger("levity.plugins")

#: The version of the plugin API, "MAJOR.MINOR". A minor version adds to it (a hook, a
#: context field, a signal argument); a major version changes or removes something.
#: Plugin apps state what they work with (PluginAppConfig.min_api_version and
#: max_api_version), checked at start-up.
PLUGIN_API_VERSION = "1.0"

#: The name of the plugin whose hook is running (set by plugins.dispatch), so that
#: a decision records who took it without the plugin saying so.
current_plugin: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "levity_current_plugin", default=None
)


class PluginHook(str, enum.Enum):
    BEFORE_BOOT_NOTIFICATION = "before_boot_notification"
    AFTER_BOOT_NOTIFICATION = "after_boot_notification"
    BEFORE_STATUS_NOTIFICATION = "before_status_notification"
    AFTER_STATUS_NOTIFICATION = "after_status_notification"
    BEFORE_START_TRANSACTION = "before_start_transaction"
    AFTER_START_TRANSACTION = "after_start_transaction"
    BEFORE_STOP_TRANSACTION = "before_stop_transaction"
    AFTER_STOP_TRANSACTION = "after_stop_transaction"
    BEFORE_HEARTBEAT = "before_heartbeat"
    AFTER_HEARTBEAT = "after_heartbeat"
    BEFORE_METER_VALUES = "before_meter_values"
    AFTER_METER_VALUES = "after_meter_values"
    BEFORE_AUTHORIZE = "before_authorize"
    AFTER_AUTHORIZE = "after_authorize"
    BEFORE_SECURITY_EVENT_NOTIFICATION = "before_security_event_notification"
    AFTER_SECURITY_EVENT_NOTIFICATION = "after_security_event_notification"

    @property
    def is_before(self) -> bool:
        return self.value.startswith("before_")

    @property
    def action(self) -> str:
        """The OCPP action of the hook, e.g. ``"StartTransaction"``."""
        return _ACTIONS[self.value.split("_", 1)[1]]


_ACTIONS = {
    "boot_notification": "BootNotification",
    "status_notification": "StatusNotification",
    "start_transaction": "StartTransaction",
    "stop_transaction": "StopTransaction",
    "heartbeat": "Heartbeat",
    "meter_values": "MeterValues",
    "authorize": "Authorize",
    "security_event_notification": "SecurityEventNotification",
}


@dataclass
class PluginContext:
    """What a hook receives: the session, the message (snake_case), and the result.

    `result` is the call_result object sent to the charge point (AFTER hooks only).
    A BEFORE hook may decide the answer with `respond()`; `decision` and
    `decided_by` show the decision that stands (AFTER hooks see it too).
    """

    charge_point: LevityChargePoint
    message_data: dict[str, Any]
    result: Any = None
    hook: PluginHook | None = field(default=None, repr=False)
    decision: Any = field(default=None, repr=False)
    decided_by: str | None = field(default=None, repr=False)

    def respond(self, result: Any, *, by: str | None = None) -> bool:
        """Decide the answer to this message (BEFORE hooks only).

        ``result`` is the action's call_result object (``call_result.Authorize(...)``)
        or a dict of some of its fields in snake_case (``{"id_tag_info": {"status":
        "Blocked"}}``). The first decision stands unless a later one is more
        restrictive (a refusal beats an acceptance; see docs/plugins.md). Returns
        True when this decision is now the answer. The core handler still runs.
        """
        from . import decisions

        if self.hook is None or not self.hook.is_before:
            raise RuntimeError("respond() decides the answer, so only BEFORE hooks may call it")
        decisions.check(self.hook, result)
        by = by or current_plugin.get() or "a hook receiver"
        if self.decision is not None and decisions.rank(result) <= decisions.rank(self.decision):
            logger.info(
                "%s: decision of %s on %s ignored; %s's decision stands",
                self.charge_point.id,
                by,
                self.hook.action,
                self.decided_by,
            )
            return False
        self.decision = result
        self.decided_by = by
        return True


class _PluginLogger:
    """``self.logger`` even when a subclass forgets to call ``super().__init__()``."""

    def __get__(self, plugin: Any, owner: type) -> logging.Logger:
        return logging.getLogger(f"levity.plugins.{owner.__name__}")


class ChargePointPlugin:
    """Base class of a plugin: map hooks to method names in `hooks()`.

    One instance serves one charge point connection (the factory or the
    LEVITY_PLUGINS entry builds a fresh one per connection).
    """

    logger = _PluginLogger()

    def __init__(self) -> None:
        self.logger = logging.getLogger(f"levity.plugins.{type(self).__name__}")

    def hooks(self) -> dict[PluginHook, str]:
        """Which hooks this plugin handles: ``{PluginHook.X: "method_name"}``."""
        return {}

    async def initialize(self, charge_point: LevityChargePoint) -> None:
        """Called once when the plugin is registered with a connected charge point."""

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        """Called when the charge point disconnects."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
