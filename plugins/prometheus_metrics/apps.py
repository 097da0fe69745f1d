from plugins.apps import PluginAppConfig


class PrometheusMetricsConfig(PluginAppConfig):
    """Provides PrometheusMetricsPlugin, the /metrics view and the metrics port.

    Inert unless metrics are on (see ``conf.metrics_enabled``): then ``ready()``
    connects the receivers and registers the database-state collector.
    """

    name = "plugins.prometheus_metrics"
    label = "prometheus_metrics"
    verbose_name = "Prometheus metrics"
    plugin_classes = ("plugins.prometheus_metrics.plugin.PrometheusMetricsPlugin",)

    def ready(self) -> None:
        from .conf import metrics_enabled

        if not metrics_enabled():
            return
        from prometheus_client import disable_created_metrics

        from . import receivers  # noqa: F401  connects message_handled, connection_refused, server_started
        from .collectors import register_state_collector

        # No *_created series: they double the series count and no query here uses them.
        disable_created_metrics()
        register_state_collector()
