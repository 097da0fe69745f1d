"""Levity plugins: the API is in plugins.base, the hook signals in plugins.signals.

Built-in plugins are importable from here (``from plugins import
AutoRemoteStartPlugin``); each lives in its own Django app, imported lazily so
that this package can be an installed app itself.
"""

from importlib import import_module

BUILT_IN = {
    "AutoRemoteStartPlugin": "plugins.auto_remote_start.plugin",
    "OrphanedTransactionPlugin": "plugins.orphaned_transactions.plugin",
    "TransactionNotificationPlugin": "plugins.transaction_webhook.plugin",
    "FluentdAuditPlugin": "plugins.fluentd_audit.plugin",
    "FluentdWebSocketAuditPlugin": "plugins.fluentd_audit.plugin",
    "PrometheusMetricsPlugin": "plugins.prometheus_metrics.plugin",
}


def __getattr__(name: str):
    try:
        module = BUILT_IN[name]
    except KeyError:
        raise AttributeError(f"module 'plugins' has no attribute {name!r}") from None
    return getattr(import_module(module), name)


def __dir__():
    return sorted([*globals(), *BUILT_IN])
