"""Receivers of the message timing, connection refusal and server start signals
(connected when metrics are on)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from plugins.signals import connection_refused, message_handled, server_started

from . import exports, metrics
from .plugin import PrometheusMetricsPlugin

logger = logging.getLogger(__name__)


@receiver(message_handled, dispatch_uid="levity.prometheus_metrics.message_handled")
def observe_message(
    sender: Any,
    charge_point: Any,
    action: str | None,
    duration: float | None,
    error_code: str | None,
    **kwargs: Any,
) -> None:
    """Time and count the message, for sessions that have the plugin."""
    if any(isinstance(plugin, PrometheusMetricsPlugin) for plugin in charge_point.plugins):
        metrics.observe_message(action, duration, error_code)


@receiver(connection_refused, dispatch_uid="levity.prometheus_metrics.connection_refused")
def count_refusal(sender: Any, kind: str, **kwargs: Any) -> None:
    """Count a refused connection (it has no session, so no plugins: counted for the server)."""
    if kind in metrics.REFUSAL_KINDS:
        metrics.CONNECTIONS_REFUSED.labels(kind).inc()


@receiver(server_started, dispatch_uid="levity.prometheus_metrics.server_started")
def start_metrics_port(sender: Any, **kwargs: Any) -> None:
    exports.serve_metrics_port()
