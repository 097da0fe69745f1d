"""Settings that used to fail late or unsafely: each stops start-up with one line naming
the variable, and the generated secret key file is private from its first byte."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR, server_env
from tests.levity_site.test_configuration import run

pytestmark = pytest.mark.once  # settings only

BAD_VALUES = [
    ("LOG_LEVEL", "LOUD", "is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("REDIS_URL", "localhost:6379", "must start with redis:// or rediss:// or unix://"),
    ("REDIS_URL", "redis://:secret@/0", "names no host"),
    ("LEVITY_API_URL", "127.0.0.1:9000", "must start with http:// or https://"),
    ("LEVITY_API_URL", "http://server:port", "is not a valid URL"),
    ("LEVITY_CLOCK_SKEW_TOLERANCE", "-1", "must be at least 0"),
    ("LEVITY_API_JSON_MAX_DEPTH", "0", "must be at least 1"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_a_malformed_value_stops_manage_py_naming_the_variable(tmp_path, name, value, message):
    result = run(["manage.py", "check"], server_env(tmp_path / "db.sqlite3", **{name: value}))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Levity configuration error: {name}")
    assert message in line


def test_a_redis_url_password_is_not_repeated_in_the_message(tmp_path):
    result = run(["manage.py", "check"], server_env(tmp_path / "db.sqlite3", REDIS_URL="redis://:hunter2@/0"))
    assert result.returncode != 0 and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "debug"),
        ("REDIS_URL", "rediss://user:pw@redis.example:6380/1"),
        ("REDIS_URL", "unix:///run/redis.sock"),
        ("LEVITY_API_URL", "https://levity.example/prefix/"),
    ],
)
def test_valid_values_pass(tmp_path, name, value):
    result = run(["manage.py", "check"], server_env(tmp_path / "db.sqlite3", **{name: value}))
    assert result.returncode == 0, result.stderr


GENERATE = (
    "import sys; from pathlib import Path; from levity_site.settings import envsecret; "
    "print(envsecret('LEVITY_TEST_ONLY_SECRET', Path(sys.argv[1])))"
)


def generate_at_once(path, processes: int) -> list[str]:
    env = server_env(path.parent / "db.sqlite3")
    env.pop("LEVITY_TEST_ONLY_SECRET", None)
    started = [
        subprocess.Popen(
            [sys.executable, "-c", GENERATE, str(path)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    return [process.communicate(timeout=60)[0].strip() for process in started]


def test_first_starts_at_once_agree_on_one_private_secret_key(tmp_path):
    path = tmp_path / ".secret_key"
    values = generate_at_once(path, 6)
    assert len(set(values)) == 1 and len(values[0]) > 50
    assert path.read_text() == values[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secret_key")] == [".secret_key"]
    # Later starts read it.
    assert generate_at_once(path, 1) == values[:1]


def test_an_empty_secret_key_file_stops_start_up(tmp_path):
    path = tmp_path / ".secret_key"
    path.write_text("")
    result = subprocess.run(
        [sys.executable, "-c", GENERATE, str(path)],
        cwd=PROJECT_DIR,
        env=server_env(tmp_path / "db.sqlite3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "is empty; delete it to generate a new secret key" in result.stderr


def test_a_start_that_loses_the_race_uses_the_winners_secret_key(tmp_path, monkeypatch):
    """Another first start writes the file between this one's check and its write."""
    from levity_site import settings as levity_settings

    path = tmp_path / ".secret_key"
    monkeypatch.delenv("LEVITY_TEST_ONLY_SECRET", raising=False)
    monkeypatch.delenv("LEVITY_TEST_ONLY_SECRET_FILE", raising=False)

    def generated_while_the_other_wins(length: int) -> str:
        path.write_text("the-winners-key")
        return "the-losers-key"

    monkeypatch.setattr(levity_settings.secrets, "token_urlsafe", generated_while_the_other_wins)
    assert levity_settings.envsecret("LEVITY_TEST_ONLY_SECRET", path) == "the-winners-key"
    assert path.read_text() == "the-winners-key"
    assert [p.name for p in tmp_path.iterdir()] == [".secret_key"]
