"""``manage.py runserver``: daphne's development server (HTTP and the charge points' WebSockets).

Daphne's own app is not in INSTALLED_APPS: its AppConfig imports daphne.server (Twisted,
autobahn and an event loop) as the apps load, in every manage.py command. This app, listed
where daphne's was (before django.contrib.staticfiles, whose runserver it overrides),
gives the same command and imports daphne only when the command runs. Production runs
``python -m levity_site.server``.
"""

from daphne.management.commands.runserver import Command

__all__ = ["Command"]
