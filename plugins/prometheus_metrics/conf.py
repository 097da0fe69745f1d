"""When the metrics are on, and where they are shared between processes."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def metrics_enabled() -> bool:
    """On when LEVITY_METRICS_PORT is set or LEVITY_PLUGINS lists PrometheusMetricsPlugin.

    With a LEVITY_PLUGIN_FACTORY that returns the plugin, set LEVITY_METRICS_PORT:
    the factory is only called per connection.
    """
    if settings.LEVITY_METRICS_PORT:
        return True
    from plugins.loading import configuration

    entries = configuration().entries
    if not entries:  # and the plugin module (with OCPP 1.6's schemas) stays unimported
        return False
    from .plugin import PrometheusMetricsPlugin

    return any(issubclass(entry.plugin_class, PrometheusMetricsPlugin) for entry in entries)


def multiprocess_dir() -> str:
    """prometheus_client's multiprocess directory, or '' for one process."""
    return settings.PROMETHEUS_MULTIPROC_DIR
