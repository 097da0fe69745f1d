from django.apps import AppConfig


class PluginAppConfig(AppConfig):
    """The AppConfig of a plugin app: names the ChargePointPlugin classes it provides.

    Installing the app makes its plugins available; enabling one (with its options)
    is a LEVITY_PLUGINS entry or a LEVITY_PLUGIN_FACTORY.
    """

    #: Dotted paths of the plugin classes of this app.
    plugin_classes: tuple[str, ...] = ()

    #: The plugin API versions (plugins.base.PLUGIN_API_VERSION) this app works with,
    #: both inclusive, "MAJOR.MINOR"; a maximum of "MAJOR" accepts every MAJOR.x.
    #: Levity refuses to start when its version is outside them. None: no bound.
    min_api_version: str | None = None
    max_api_version: str | None = None

    # Django picks an app's AppConfig among the AppConfig subclasses its apps module
    # holds, and this base class is imported there too: it is never the default,
    # its subclasses are (unless they say otherwise).
    default = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "default" not in cls.__dict__:
            cls.default = True


class PluginsConfig(AppConfig):
    name = "plugins"
    verbose_name = "Plugins"

    def ready(self) -> None:
        from . import dispatch  # noqa: F401  connects the plugin runner
        from .loading import check_api_versions, configuration

        # Bad plugin configuration fails here, at start-up, not at the first message.
        check_api_versions()
        configuration()
