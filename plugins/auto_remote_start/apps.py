from plugins.apps import PluginAppConfig


class AutoRemoteStartConfig(PluginAppConfig):
    name = "plugins.auto_remote_start"
    label = "auto_remote_start"
    verbose_name = "Auto remote start"
    plugin_classes = ("plugins.auto_remote_start.plugin.AutoRemoteStartPlugin",)
