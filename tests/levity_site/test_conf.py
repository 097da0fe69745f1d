"""levity_site.conf.settings: the settings as plain attributes, following every change."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from levity_site import conf

pytestmark = pytest.mark.once  # no database


def test_every_setting_is_there_with_its_value():
    assert conf.settings.LEVITY_CALL_TIMEOUT == django_settings.LEVITY_CALL_TIMEOUT
    assert conf.settings.INSTALLED_APPS == django_settings.INSTALLED_APPS


def test_an_overridden_setting_is_seen_and_restored():
    before = conf.settings.LEVITY_MAX_CONNECTIONS_PER_ADDRESS
    with override_settings(LEVITY_MAX_CONNECTIONS_PER_ADDRESS=before + 7):
        during = conf.settings.LEVITY_MAX_CONNECTIONS_PER_ADDRESS
    assert (during, conf.settings.LEVITY_MAX_CONNECTIONS_PER_ADDRESS) == (before + 7, before)


def test_pytest_django_settings_fixture_changes_are_seen(settings):
    settings.LEVITY_CALL_RATE = 123.0
    assert conf.settings.LEVITY_CALL_RATE == 123.0


def test_a_setting_an_override_added_is_gone_after_it():
    with override_settings(LEVITY_NOT_A_SETTING=5):
        assert conf.settings.LEVITY_NOT_A_SETTING == 5
    assert not hasattr(conf.settings, "LEVITY_NOT_A_SETTING")


def test_a_setting_changed_while_the_snapshot_is_read_is_not_lost(monkeypatch):
    conf.settings.forget()
    reading, go, changed, done = (threading.Event() for _ in range(4))
    real = conf._read_all

    def slow_first_read():
        monkeypatch.setattr(conf, "_read_all", real)
        reading.set()
        assert go.wait(10)
        return real()

    monkeypatch.setattr(conf, "_read_all", slow_first_read)

    def change_the_setting():
        with override_settings(LEVITY_CALL_RATE=77.0):  # its signal waits for the read
            changed.set()
            assert done.wait(10)

    reader = threading.Thread(target=lambda: conf.settings.LEVITY_CALL_RATE)
    reader.start()
    assert reading.wait(10)
    changer = threading.Thread(target=change_the_setting)
    changer.start()
    go.set()  # the read ends with the value from before the change
    assert changed.wait(10)
    try:
        assert conf.settings.LEVITY_CALL_RATE == 77.0
    finally:
        done.set()
        reader.join(10)
        changer.join(10)
