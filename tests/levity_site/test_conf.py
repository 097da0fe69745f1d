"""levity_site.conf.settings: the settings as plain attributes, following every change."""

from __future__ import annotations

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
