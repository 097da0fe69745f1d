"""Configuration from the environment: a malformed value stops start-up with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR, free_port, server_env

BAD_VALUES = [
    ("LEVITY_HEARTBEAT_INTERVAL", "abc", "is not a whole number"),
    ("LEVITY_HEARTBEAT_INTERVAL", "0", "must be at least 1"),
    ("LEVITY_AUTO_REGISTER", "maybe", "is not a boolean"),
    ("LEVITY_CALL_TIMEOUT", "soon", "is not a number"),
    ("LEVITY_PLUGINS", "[not json", "is not valid JSON"),
    ("DATABASE_URL", "mysql://db/levity", "Levity supports sqlite:/// and postgres://"),
    ("LEVITY_GC_THRESHOLDS", "2000,10", "must be three whole numbers of at least 1"),
    ("LEVITY_GC_THRESHOLDS", "2000,0,100", "must be three whole numbers of at least 1"),
    ("LEVITY_UNKNOWN_CHARGE_POINTS", "maybe", "use pending, accept or refuse"),
    ("LEVITY_DEFAULT_SECURITY_PROFILE", "4", "use 0, 1, 2 or 3"),
    ("LEVITY_TRUSTED_PROXIES", "10.0.0.1,proxy", "'proxy' is not an IP address or network"),
    ("LEVITY_CLIENT_CA_FILE", "/nonexistent/ca.pem", "is not a file"),
    ("LEVITY_CLIENT_CERT_ID_FIELD", "OU", "use CN, serialNumber or UID"),
    ("LEVITY_PASSWORD_CACHE_SECONDS", "-1", "must be at least 0"),
]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"), BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES]
)
def test_manage_py_check_fails_naming_the_malformed_variable(tmp_path, name, value, message):
    env = server_env(tmp_path / "db.sqlite3", **{name: value})
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Levity configuration error: {name}")
    assert message in line


def test_daphne_refuses_to_start_with_a_malformed_variable(tmp_path):
    env = server_env(tmp_path / "db.sqlite3", LEVITY_AUTO_REGISTER="maybe")
    result = run(
        ["-m", "levity_site.server", "-b", "127.0.0.1", "-p", str(free_port()), "levity_site.asgi:application"],
        env,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Levity configuration error: LEVITY_AUTO_REGISTER='maybe' is not a boolean; "
        "use true or false."
    )


def test_manage_py_check_passes_with_valid_values(tmp_path):
    env = server_env(
        tmp_path / "db.sqlite3", LEVITY_HEARTBEAT_INTERVAL="60", LEVITY_AUTO_REGISTER="false"
    )
    result = run(["manage.py", "check"], env)
    assert result.returncode == 0, result.stderr


def server_process_state(env: dict[str, str]) -> str:
    """What importing the ASGI application (as daphne does) leaves set in the process."""
    result = run(
        ["-c", "import gc, levity_site.asgi; print(*gc.get_threshold(), gc.get_freeze_count() > 0)"],
        env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_server_process_sets_the_default_gc_thresholds_after_freezing(tmp_path):
    assert server_process_state(server_env(tmp_path / "db.sqlite3")) == "5000 10 100 True"


def test_the_server_process_takes_gc_thresholds_from_the_environment(tmp_path):
    env = server_env(tmp_path / "db.sqlite3", LEVITY_GC_THRESHOLDS="700,10,10")
    assert server_process_state(env) == "700 10 10 True"
