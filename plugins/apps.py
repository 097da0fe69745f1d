from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "plugins"
    verbose_name = "Plugins"

    def ready(self) -> None:
        from . import dispatch  # noqa: F401  connects the plugin runner
        from .loading import configuration

        # Bad plugin configuration fails here, at start-up, not at the first message.
        configuration()
