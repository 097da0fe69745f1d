"""Building each connection's plugins from settings, and checking them at start-up."""

from __future__ import annotations

import importlib.util
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import dispatch
from .apps import PluginAppConfig
from .base import PLUGIN_API_VERSION, ChargePointPlugin

logger = logging.getLogger("levity.plugins")


@dataclass(frozen=True)
class PluginEntry:
    """One item of LEVITY_PLUGINS."""

    plugin_class: type[ChargePointPlugin]
    options: dict[str, Any] = field(default_factory=dict)
    charge_points: frozenset[str] | None = None

    def applies_to(self, charge_point_id: str) -> bool:
        return self.charge_points is None or charge_point_id in self.charge_points

    def build(self) -> ChargePointPlugin:
        return self.plugin_class(**self.options)


def parse_entries(raw_entries: list[Any]) -> list[PluginEntry]:
    """Validate LEVITY_PLUGINS, raising ImproperlyConfigured with how to fix it."""
    entries = []
    for index, raw in enumerate(raw_entries):
        where = f"LEVITY_PLUGINS[{index}]"
        if isinstance(raw, str):
            raw = {"class": raw}
        if not isinstance(raw, dict) or "class" not in raw:
            raise ImproperlyConfigured(
                f'{where} must be {{"class": "dotted.path", "options": {{...}}}}, got {raw!r}.'
            )
        unknown_keys = set(raw) - {"class", "options", "charge_points"}
        if unknown_keys:
            raise ImproperlyConfigured(
                f"{where} has unknown keys {sorted(unknown_keys)}; use class, options and charge_points."
            )
        plugin_class = _import_plugin_class(raw["class"], where)
        options = raw.get("options") or {}
        if not isinstance(options, dict):
            raise ImproperlyConfigured(f"{where}: options must be an object, got {options!r}.")
        _check_options(plugin_class, options, where)
        _check_instance(_build(plugin_class, options, where), where)
        charge_points = raw.get("charge_points")
        if charge_points is not None:
            if not isinstance(charge_points, list) or not all(isinstance(cp, str) for cp in charge_points):
                raise ImproperlyConfigured(f"{where}: charge_points must be a list of charge point ids.")
            charge_points = frozenset(charge_points)
        entries.append(PluginEntry(plugin_class, dict(options), charge_points))
    return entries


def _import_plugin_class(path: Any, where: str) -> type[ChargePointPlugin]:
    if not isinstance(path, str):
        raise ImproperlyConfigured(f"{where}: class must be a dotted path string.")
    try:
        plugin_class = import_string(path)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"{where}: cannot import {path!r} ({exc}). Check the dotted path; "
            f"installed plugins: {', '.join(installed_plugin_classes()) or 'none'}."
        ) from None
    if not (inspect.isclass(plugin_class) and issubclass(plugin_class, ChargePointPlugin)):
        raise ImproperlyConfigured(f"{where}: {path!r} is not a ChargePointPlugin subclass.")
    _check_app_installed(plugin_class, where)
    return plugin_class


def _check_app_installed(plugin_class: type, where: str) -> None:
    """A plugin is a Django app of its own (built-ins: plugins.<name>); it must be installed."""
    module = plugin_class.__module__
    app_config = apps.get_containing_app_config(module)
    if app_config is None or (app_config.name == "plugins" and module.count(".") >= 2):
        raise ImproperlyConfigured(
            f"{where}: {plugin_class.__name__} is defined in {module!r}, whose app is not "
            f"installed. Add {_app_of(module)!r} to INSTALLED_APPS, or to the "
            "LEVITY_EXTRA_APPS environment variable."
        )


def _app_of(module: str) -> str:
    """The app a module belongs to: the nearest enclosing package with an apps module."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        package = ".".join(parts[:end])
        try:
            if importlib.util.find_spec(f"{package}.apps") is not None:
                return package
        except ImportError:  # not a package
            continue
    return module.rpartition(".")[0] or module


def installed_plugin_classes() -> list[str]:
    """The plugin classes the installed plugin apps name (PluginAppConfig.plugin_classes)."""
    return [
        path for app_config in apps.get_app_configs() for path in getattr(app_config, "plugin_classes", ())
    ]


def _check_options(plugin_class: type, options: dict, where: str) -> None:
    signature = inspect.signature(plugin_class)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise ImproperlyConfigured(
            f"{where}: bad options for {plugin_class.__name__}: {exc}. "
            f"It accepts: {', '.join(accepted) or 'no options'}."
        ) from None


def _build(plugin_class: type[ChargePointPlugin], options: dict, where: str) -> ChargePointPlugin:
    """Build one instance at start-up, so that options the class refuses fail here."""
    try:
        return plugin_class(**options)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"{where}: {plugin_class.__name__}({_format_options(options)}) failed: {exc}"
        ) from None


def _format_options(options: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


def _check_instance(plugin: Any, where: str) -> None:
    if not isinstance(plugin, ChargePointPlugin):
        raise ImproperlyConfigured(f"{where}: {plugin!r} is not a ChargePointPlugin.")
    _check_app_installed(type(plugin), where)
    try:
        dispatch.hook_methods(plugin, strict=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from None


def _load_factory(path: str) -> Callable[[], list[ChargePointPlugin]]:
    """Import the factory and call it once, so that a broken factory fails at start-up."""
    where = "LEVITY_PLUGIN_FACTORY"
    try:
        factory = import_string(path)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"{where}: cannot import {path!r} ({exc}). Give the dotted path of a function "
            "that returns a list of ChargePointPlugin instances."
        ) from None
    if not callable(factory):
        raise ImproperlyConfigured(f"{where}: {path!r} is not callable.")
    try:
        plugins = factory()
    except Exception as exc:
        raise ImproperlyConfigured(f"{where}: {path}() failed: {exc!r}") from None
    if not isinstance(plugins, (list, tuple)):
        raise ImproperlyConfigured(
            f"{where}: {path}() returned {type(plugins).__name__}, not a list of plugins."
        )
    for index, plugin in enumerate(plugins):
        _check_instance(plugin, f"{where}: item {index} of {path}()")
    return factory


class PluginConfiguration:
    """The validated plugin settings; `plugins_for()` runs once per connection."""

    def __init__(self, entries: list[PluginEntry], factory: Callable | None) -> None:
        self.entries = entries
        self.factory = factory

    @classmethod
    def from_settings(cls) -> PluginConfiguration:
        entries = parse_entries(settings.LEVITY_PLUGINS)
        factory = None
        if settings.LEVITY_PLUGIN_FACTORY:
            factory = _load_factory(settings.LEVITY_PLUGIN_FACTORY)
        return cls(entries, factory)

    def plugins_for(self, charge_point_id: str) -> list[ChargePointPlugin]:
        """Fresh plugin instances for one connection: LEVITY_PLUGINS entries, then the factory's.

        Both were checked at start-up; should one fail now all the same, it is logged
        and the session runs without it.
        """
        plugins = []
        for entry in self.entries:
            if entry.applies_to(charge_point_id):
                try:
                    plugins.append(entry.build())
                except Exception:
                    logger.exception(
                        "%s: %s could not be built; running without it",
                        charge_point_id,
                        entry.plugin_class.__name__,
                    )
        if self.factory is not None:
            try:
                made = list(self.factory())
            except Exception:
                logger.exception(
                    "%s: LEVITY_PLUGIN_FACTORY failed; running without its plugins", charge_point_id
                )
                made = []
            for plugin in made:
                if isinstance(plugin, ChargePointPlugin):
                    plugins.append(plugin)
                else:
                    logger.error(
                        "%s: LEVITY_PLUGIN_FACTORY returned %r, not a plugin; skipped",
                        charge_point_id,
                        plugin,
                    )
        return plugins


_configuration: PluginConfiguration | None = None


def configuration() -> PluginConfiguration:
    global _configuration
    if _configuration is None:
        _configuration = PluginConfiguration.from_settings()
    return _configuration


def reset_configuration() -> None:
    """Forget the parsed settings (for tests that override LEVITY_PLUGINS)."""
    global _configuration
    _configuration = None


def plugins_for(charge_point_id: str) -> list[ChargePointPlugin]:
    return configuration().plugins_for(charge_point_id)


def check_api_versions() -> None:
    """Refuse to start when an installed plugin app does not work with this plugin API."""
    for app_config in apps.get_app_configs():
        if isinstance(app_config, PluginAppConfig):
            try:
                problem = api_version_problem(
                    app_config.min_api_version, app_config.max_api_version, PLUGIN_API_VERSION
                )
            except ValueError as exc:
                raise ImproperlyConfigured(f"plugin app {app_config.name!r}: {exc}") from None
            if problem:
                raise ImproperlyConfigured(f"plugin app {app_config.name!r} {problem}")


def api_version_problem(minimum: str | None, maximum: str | None, current: str) -> str | None:
    """Why ``current`` is outside [minimum, maximum] (None if it is within), as NetBox checks
    a plugin's min_version and max_version. A maximum "MAJOR" accepts every MAJOR.x.
    Raises ValueError for a bound that is not a version."""
    version = _version(current, "PLUGIN_API_VERSION")
    low = _version(minimum, "min_api_version") if minimum is not None else None
    high = _version(maximum, "max_api_version") if maximum is not None else None
    if (low is None or version >= low) and (high is None or version[: len(high)] <= high):
        return None
    needs = " and ".join(
        [f">= {minimum}"] * (low is not None)
        + [f"<= {maximum}" if len(high or ()) > 1 else f"{maximum}.x"] * (high is not None)
    )
    return (
        f"needs plugin API {needs}; this Levity provides {current}. Install a version of the "
        "plugin made for this plugin API, or a Levity that provides what it needs."
    )


def _version(text: Any, name: str) -> tuple[int, ...]:
    parts = text.split(".") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{name} {text!r} is not a version such as '1.0'.")
    return tuple(int(part) for part in parts)
