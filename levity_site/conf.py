"""The settings as plain attributes, for the code that runs for every connection or frame.

Each read of ``django.conf.settings.X`` is a Python call (``LazySettings``), and the
OCPP session layer reads a good many settings for every charge point that
connects. ``levity_site.conf.settings.X`` is the same value, read from a snapshot
of every setting that is made once per process, and made again whenever Django
says a setting changed (``override_settings``, pytest-django's ``settings``
fixture). Code that runs now and then (views, commands, start-up) reads
``django.conf.settings`` as usual.

A setting assigned directly (``django.conf.settings.X = ...``) sends no signal:
change settings with ``override_settings``, or call ``settings.forget()``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


def _read_all() -> dict[str, Any]:
    values = {}
    for name in dir(django_settings):
        if name.isupper():
            # A setting that cannot be read (an empty SECRET_KEY) is missing here as there.
            with contextlib.suppress(ImproperlyConfigured):
                values[name] = getattr(django_settings, name)
    return values


class Settings:
    """Every setting as an instance attribute, read on the first access (so importing
    this module reads no settings: a bad one stops start-up where start-up reports it)."""

    def __init__(self) -> None:
        # Reading and forgetting take turns: a snapshot read while a setting changed
        # is never kept as the current one.
        self._lock = threading.Lock()
        self._complete = False

    def __getattr__(self, name: str) -> Any:
        # Only for a name not among the instance's attributes: the snapshot is not
        # made yet, or the setting does not exist.
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if not self._complete:
                vars(self).update(_read_all())
                self._complete = True
        try:
            return vars(self)[name]
        except KeyError:
            raise AttributeError(name) from None

    def forget(self) -> None:
        """Read every setting again on the next access."""
        with self._lock:
            for name in [name for name in vars(self) if not name.startswith("_")]:
                del vars(self)[name]
            self._complete = False


settings: Any = Settings()


def _setting_changed(**kwargs: Any) -> None:
    settings.forget()


setting_changed.connect(_setting_changed, dispatch_uid="levity_site.conf")
