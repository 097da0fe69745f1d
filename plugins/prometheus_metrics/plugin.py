"""PrometheusMetricsPlugin: Prometheus metrics of the OCPP traffic (docs/observability.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugins.base import ChargePointPlugin, PluginContext, PluginHook

from . import metrics

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint


class PrometheusMetricsPlugin(ChargePointPlugin):
    """Counts a session's messages, their handling time and errors, boots, statuses and
    security events.

    Per-charge-point state (connected, transactions, energy, current, connector
    status) is read from the database when Prometheus scrapes, for every charge
    point, so it is right after a restart and across processes. See
    docs/observability.md and examples/prometheus/README.md.
    """

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.AFTER_BOOT_NOTIFICATION: "count_boot",
            PluginHook.AFTER_STATUS_NOTIFICATION: "count_status",
            PluginHook.AFTER_SECURITY_EVENT_NOTIFICATION: "count_security_event",
        }

    async def initialize(self, charge_point: LevityChargePoint) -> None:
        metrics.CONNECTIONS.inc()

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        metrics.DISCONNECTIONS.inc()

    async def count_boot(self, context: PluginContext) -> None:
        metrics.BOOTS.inc()

    async def count_status(self, context: PluginContext) -> None:
        data = context.message_data
        metrics.STATUS_NOTIFICATIONS.labels(data["status"], data["error_code"]).inc()

    async def count_security_event(self, context: PluginContext) -> None:
        if not getattr(context, "repeated", False):  # a resent event is stored, and counted, once
            metrics.SECURITY_EVENTS.labels(metrics.security_event_label(context.message_data["type"])).inc()
