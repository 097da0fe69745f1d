"""The settings as plain attributes, for the code that runs for every connection or frame.

Each read of ``django.conf.settings.X`` is a Python call (``LazySettings``), and the
OCPP session layer reads about fifteen settings for every charge point that
connects. ``levity_site.conf.settings.X`` is the same value, read from a snapshot
of every setting that is made once per process, and made again whenever Django
says a setting changed (``override_settings``, pytest-django's ``settings``
fixture). Code that runs now and then (views, commands, start-up) reads
``django.conf.settings`` as usual.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed


def _read() -> dict[str, Any]:
    return {name: getattr(django_settings, name) for name in dir(django_settings) if name.isupper()}


#: Every setting, as an attribute (the object stays the same when a setting changes).
settings: Any = SimpleNamespace(**_read())


def _setting_changed(**kwargs: Any) -> None:
    current = _read()
    for name in vars(settings).keys() - current.keys():  # deleted by an override
        delattr(settings, name)
    vars(settings).update(current)


setting_changed.connect(_setting_changed, dispatch_uid="levity_site.conf")
