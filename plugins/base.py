"""The plugin API: ChargePointPlugin, PluginHook and PluginContext.

These names, the hook names and their semantics are the public API of
levity-plugin-framework.md; keep them stable.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargepoints.handlers import LevityChargePoint


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

    @property
    def is_before(self) -> bool:
        return self.value.startswith("before_")


class DecisionConflict(Exception):
    """Raised by PluginContext.respond when an earlier hook already decided."""


@dataclass
class PluginContext:
    """What a hook receives: the session, the message (snake_case), and the result.

    `result` is the call_result object sent to the charge point (AFTER hooks only).
    A BEFORE hook may decide the answer with `respond()`; see docs/plugins.md for
    how decisions of several plugins combine.
    """

    charge_point: LevityChargePoint
    message_data: dict[str, Any]
    result: Any = None
    decision: Any = field(default=None, repr=False)
    decided_by: str | None = field(default=None, repr=False)

    def respond(self, result: Any, *, by: str | None = None) -> None:
        """Decide the answer to this message (BEFORE hooks only). The first decision wins."""
        if self.decision is not None:
            raise DecisionConflict(
                f"{self.decided_by} already decided the answer to this message"
            )
        self.decision = result
        self.decided_by = by or "unknown"


class ChargePointPlugin:
    """Base class of a plugin: map hooks to method names in `hooks()`."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(f"levity.plugins.{type(self).__name__}")

    def hooks(self) -> dict[PluginHook, str]:
        return {}

    async def initialize(self, charge_point: LevityChargePoint) -> None:
        """Called once when the plugin is registered with a connected charge point."""

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        """Called when the charge point disconnects."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
