"""Configuration from the environment: a malformed value stops start-up with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR, free_port, server_env

pytestmark = pytest.mark.once  # settings only; DATABASE_URL is parsed, never opened

BAD_VALUES = [
    ("LEVITY_HEARTBEAT_INTERVAL", "abc", "is not a whole number"),
    ("LEVITY_HEARTBEAT_INTERVAL", "0", "must be at least 1"),
    ("LEVITY_AUTO_REGISTER", "maybe", "is not a boolean"),
    ("LEVITY_CALL_TIMEOUT", "soon", "is not a number"),
    ("LEVITY_PLUGINS", "[not json", "is not valid JSON"),
    ("DATABASE_URL", "mysql://db/levity", "Levity supports sqlite:/// and postgres://"),
    ("LEVITY_GC_THRESHOLDS", "2000,10", "must be three whole numbers of at least 1"),
    ("LEVITY_GC_THRESHOLDS", "2000,0,100", "must be three whole numbers of at least 1"),
    ("DATABASE_POOL_MAX_SIZE", "-1", "must be at least 0"),
    ("DATABASE_POOL_TIMEOUT", "0", "must be at least 0.1"),
    ("DATABASE_LOCK_TIMEOUT", "-1", "must be at least 0"),
    ("DATABASE_LOCK_RETRY_TIMEOUT", "0", "must be at least 0.1"),
    ("LEVITY_CSMS_CERT_VALIDITY_DAYS", "0", "must be at least 1"),
    ("LEVITY_CSMS_CSR_MIN_RSA_BITS", "512", "must be at least 1024"),
    ("LEVITY_UNKNOWN_CHARGE_POINTS", "maybe", "use pending, accept or refuse"),
    ("LEVITY_DEFAULT_SECURITY_PROFILE", "4", "use 0, 1, 2 or 3"),
    ("LEVITY_TRUSTED_PROXIES", "10.0.0.1,proxy", "'proxy' is not an IP address or network"),
    ("LEVITY_CLIENT_CA_FILE", "/nonexistent/ca.pem", "is not a file"),
    ("LEVITY_CLIENT_CERT_ID_FIELD", "OU", "use CN, serialNumber or UID"),
    ("LEVITY_TLS_CRL", "/nonexistent/crl.pem", "cannot be read: No such file or directory"),
    ("LEVITY_TLS_CRL", "README.md", "no PEM CRL"),
    ("LEVITY_PASSWORD_CACHE_SECONDS", "-1", "must be at least 0"),
    ("LEVITY_WEBHOOK_POLL_SECONDS", "0", "must be at least 0.05"),
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


def serve(env: dict[str, str]) -> subprocess.CompletedProcess:
    """daphne (levity_site.server) on a free port with ``env``: for the start-ups it refuses."""
    return run(
        [
            "-m",
            "levity_site.server",
            "-b",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "levity_site.asgi:application",
        ],
        env,
    )


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_manage_py_check_fails_naming_the_malformed_variable(tmp_path, name, value, message):
    env = server_env(tmp_path / "db.sqlite3", **{name: value})
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Levity configuration error: {name}")
    assert message in line


def test_daphne_refuses_to_start_with_a_malformed_variable(tmp_path):
    env = server_env(tmp_path / "db.sqlite3", LEVITY_AUTO_REGISTER="maybe")
    result = serve(env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Levity configuration error: LEVITY_AUTO_REGISTER='maybe' is not a boolean; use true or false."
    )


def test_manage_py_check_passes_with_valid_values(tmp_path):
    env = server_env(tmp_path / "db.sqlite3", LEVITY_HEARTBEAT_INTERVAL="60", LEVITY_AUTO_REGISTER="false")
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


def test_a_pool_smaller_than_its_minimum_stops_start_up(tmp_path):
    env = server_env(tmp_path / "db.sqlite3", DATABASE_POOL_MIN_SIZE="5", DATABASE_POOL_MAX_SIZE="4")
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Levity configuration error: DATABASE_POOL_MIN_SIZE=5 is more than DATABASE_POOL_MAX_SIZE=4."
    )


def database_config(env: dict[str, str]) -> dict:
    result = run(
        ["-c", "import json; from django.conf import settings as s; "
         "d = s.DATABASES['default']; print(json.dumps([d['CONN_MAX_AGE'], d.get('OPTIONS', {})]))"],
        {**env, "DJANGO_SETTINGS_MODULE": "levity_site.settings"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_gets_a_psycopg_pool_instead_of_persistent_connections(tmp_path):
    env = server_env(
        tmp_path / "db.sqlite3", DATABASE_URL="postgres://u@db/levity", DATABASE_POOL_MAX_SIZE="7"
    )
    assert database_config(env) == [0, {"pool": {"min_size": 2, "max_size": 7, "timeout": 10.0}}]


def test_a_pool_size_of_zero_keeps_persistent_connections(tmp_path):
    env = server_env(
        tmp_path / "db.sqlite3", DATABASE_URL="postgres://u@db/levity", DATABASE_POOL_MAX_SIZE="0"
    )
    assert database_config(env) == [600, {}]


# --- the CA that signs charge point certificates ----------------------------------------


def _write_ca(directory, *, ca: bool = True) -> tuple[str, str]:
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


def test_a_ca_certificate_without_its_key_stops_start_up(tmp_path):
    cert_file, _ = _write_ca(tmp_path)
    env = server_env(tmp_path / "db.sqlite3", LEVITY_CSMS_CA_CERT_FILE=cert_file)
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Levity configuration error: LEVITY_CSMS_CA_KEY_FILE is not set: the CA that signs "
        "charge point certificates needs both LEVITY_CSMS_CA_CERT_FILE and LEVITY_CSMS_CA_KEY_FILE."
    ]


def test_a_ca_key_that_is_not_the_certificates_stops_start_up(tmp_path):
    cert_file, _ = _write_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = _write_ca(tmp_path / "other")
    env = server_env(
        tmp_path / "db.sqlite3", LEVITY_CSMS_CA_CERT_FILE=cert_file, LEVITY_CSMS_CA_KEY_FILE=other_key
    )
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Levity configuration error: LEVITY_CSMS_CA_KEY_FILE=")
    assert "is not the key of the certificate in LEVITY_CSMS_CA_CERT_FILE" in line


def test_an_end_entity_certificate_as_ca_stops_start_up(tmp_path):
    cert_file, key_file = _write_ca(tmp_path, ca=False)
    env = server_env(
        tmp_path / "db.sqlite3", LEVITY_CSMS_CA_CERT_FILE=cert_file, LEVITY_CSMS_CA_KEY_FILE=key_file
    )
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "its first certificate is not a CA certificate" in result.stderr


def test_an_unreadable_ca_file_stops_daphne_naming_the_variable(tmp_path):
    env = server_env(
        tmp_path / "db.sqlite3",
        LEVITY_CSMS_CA_CERT_FILE=str(tmp_path / "missing.pem"),
        LEVITY_CSMS_CA_KEY_FILE=str(tmp_path / "missing.key"),
    )
    result = serve(env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"Levity configuration error: LEVITY_CSMS_CA_CERT_FILE='{tmp_path / 'missing.pem'}' "
        "cannot be read: No such file or directory."
    )


def test_a_valid_ca_passes_the_checks(tmp_path):
    cert_file, key_file = _write_ca(tmp_path)
    env = server_env(
        tmp_path / "db.sqlite3", LEVITY_CSMS_CA_CERT_FILE=cert_file, LEVITY_CSMS_CA_KEY_FILE=key_file
    )
    result = run(["manage.py", "check"], env)
    assert result.returncode == 0, result.stderr
