from plugins.apps import PluginAppConfig


class FuturePluginConfig(PluginAppConfig):
    name = "tests.future_plugin"
    label = "future_plugin"
    min_api_version = "99.0"
