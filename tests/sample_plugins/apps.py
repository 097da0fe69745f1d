from plugins.apps import PluginAppConfig


class SamplePluginsConfig(PluginAppConfig):
    name = "tests.sample_plugins"
    label = "sample_plugins"
    plugin_classes = (
        "tests.sample_plugins.plugins.MaintenancePlugin",
        "tests.sample_plugins.plugins.RateLimitPlugin",
        "tests.sample_plugins.plugins.AcceptEveryonePlugin",
        "tests.sample_plugins.plugins.IntervalFromChargePointPlugin",
        "tests.sample_plugins.plugins.ReportBackPlugin",
        "tests.sample_plugins.plugins.TriggerOnConnectPlugin",
        "tests.sample_plugins.plugins.FailingPlugin",
        "tests.sample_plugins.plugins.HangingPlugin",
    )
