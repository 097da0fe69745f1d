"""The settings as plain attributes, for the code that runs for every connection or frame.

Each read of ``django.conf.settings.X`` is a Python call (``LazySettings``), and the
OCPP session layer reads a good many settings for every charge point that
connects. ``levity_site.conf.settings.X`` is the same value, read from a snapshot
of every setting that is made once per process, and made again whenever Django
says a setting changed (``override_settings``, pytest-django's ``settings``
fixture). Code that runs now and then (views, commands, start-up) reads
``django.conf.settings`` as usual.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed


class Settings:
    """Every setting as an instance attribute, read on the first access (so importing
    this module reads no settings: a bad one stops start-up where start-up reports it)."""

    _read = False

    def __getattr__(self, name: str) -> Any:
        # Only for a name not (yet) among the instance's attributes.
        if self._read or name.startswith("__"):
            raise AttributeError(name)
        vars(self).update(
            (setting, getattr(django_settings, setting))
            for setting in dir(django_settings)
            if setting.isupper()
        )
        self._read = True
        return getattr(self, name)

    def forget(self) -> None:
        """Read every setting again on the next access."""
        vars(self).clear()


settings: Any = Settings()


def _setting_changed(**kwargs: Any) -> None:
    settings.forget()


setting_changed.connect(_setting_changed, dispatch_uid="levity_site.conf")
