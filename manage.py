#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "levity_site.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  read the environment now: a bad value is one clear line
    except ImproperlyConfigured as exc:
        sys.exit(f"Levity configuration error: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    from django.core.exceptions import ImproperlyConfigured

    try:
        main()
    except ImproperlyConfigured as exc:
        # What start-up finds wrong (e.g. LEVITY_PLUGINS, checked when the apps load).
        sys.exit(f"Levity configuration error: {exc}")
