from django.apps import AppConfig


class FluentdAuditConfig(AppConfig):
    """Provides FluentdAuditPlugin and FluentdWebSocketAuditPlugin."""

    name = "plugins.fluentd_audit"
    label = "fluentd_audit"
    verbose_name = "Fluentd audit"
    plugin_classes = ("FluentdAuditPlugin", "FluentdWebSocketAuditPlugin")
