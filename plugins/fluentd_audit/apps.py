from plugins.apps import PluginAppConfig


class FluentdAuditConfig(PluginAppConfig):
    """Provides FluentdAuditPlugin and FluentdWebSocketAuditPlugin."""

    name = "plugins.fluentd_audit"
    label = "fluentd_audit"
    verbose_name = "Fluentd audit"
    plugin_classes = (
        "plugins.fluentd_audit.plugin.FluentdAuditPlugin",
        "plugins.fluentd_audit.plugin.FluentdWebSocketAuditPlugin",
    )

    def ready(self) -> None:
        # Registers levity_fluentd_records_dropped_total, so /metrics lists it from start.
        from . import senders  # noqa: F401
