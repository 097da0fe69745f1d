"""LEVITY_ENV=production: what start-up refuses, and a clean `manage.py check --deploy`."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import server_env
from tests.levity_site.test_configuration import run, serve

pytestmark = pytest.mark.once  # settings only; DATABASE_URL is parsed, never opened

PRODUCTION_KEY = secrets.token_urlsafe(50)


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    env = server_env(
        tmp_path / "db.sqlite3",
        LEVITY_ENV="production",
        SECRET_KEY=PRODUCTION_KEY,
        ALLOWED_HOSTS="csms.example.com",
    )
    env.pop("DEBUG", None)
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_outside_production(tmp_path):
    # What the production defaults fix: HSTS, HTTPS redirect, secure cookies.
    env = server_env(tmp_path / "db.sqlite3", SECRET_KEY=PRODUCTION_KEY)
    result = run(["manage.py", "check", "--deploy"], env)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in names}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DEBUG": "true"}, "DEBUG=true is refused with LEVITY_ENV=production."),
        ({"SECRET_KEY": None}, "SECRET_KEY (or SECRET_KEY_FILE) must be set with LEVITY_ENV=production"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS must be set with LEVITY_ENV=production"),
        ({"LEVITY_ENV": "staging"}, "LEVITY_ENV='staging' must be development or production."),
    ],
    ids=["debug", "generated-secret-key", "no-allowed-hosts", "unknown-env"],
)
def test_production_refuses_to_start(tmp_path, change, message):
    env = production_env(tmp_path)
    env = without(env, *[name for name, value in change.items() if value is None])
    env.update({name: value for name, value in change.items() if value is not None})
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Levity configuration error: ") and message in line


def test_daphne_refuses_to_start_in_production_with_debug(tmp_path):
    env = production_env(tmp_path, DEBUG="true")
    result = serve(env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Levity configuration error: DEBUG=true is refused with LEVITY_ENV=production."
    )
