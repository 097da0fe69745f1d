"""Levity's production topology, run natively: PostgreSQL, Redis, two daphne processes, nginx.

``deploy/nginx/levity.conf`` is rendered with the test's ports, certificate and
static directory (every value it replaces must be in the file, so the test runs
the file as shipped, not a copy of it), then run by Debian's nginx as a throwaway
process under a temp prefix. The TLS certificates are made here with
``cryptography``: a CA, and a server certificate for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.processes import ServerProcess, free_port
from tests.conftest import PROJECT_DIR, DaphneServer
from tests.postgres_server import rows

NGINX_CONF = PROJECT_DIR / "deploy" / "nginx" / "levity.conf"
SYSTEMD_DIR = PROJECT_DIR / "deploy" / "systemd"
#: Where deploy/systemd/ expects Levity's checkout and virtual environment.
INSTALL_DIR = "/srv/levity"
INSTALL_PYTHON = "/srv/levity/.venv/bin/python"


def require_program(program: str, debian_package: str) -> str:
    """The path of ``program``; installed with apt-get when missing and root, else skip (fail under CI)."""
    found = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", debian_package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which(program)
        if found:
            return found
    message = f"{program} is not installed (apt-get install {debian_package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path

    def client_context(self) -> ssl.SSLContext:
        """What a charge point uses: trusts only this CA, checks the host name."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(directory: Path) -> Certificates:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Levity test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths.server_key.chmod(0o600)
    return paths


def render_levity_conf(
    *, upstreams: list[int], tls_port: int, http_port: int, certificates: Certificates, static_root: Path
) -> str:
    """deploy/nginx/levity.conf with this test's ports, certificates and static directory."""
    text = NGINX_CONF.read_text()
    upstream_lines = "\n".join(f"    server 127.0.0.1:{port} max_fails=0;" for port in upstreams)
    replacements = [
        (
            "    server 127.0.0.1:9001 max_fails=0;\n    server 127.0.0.1:9002 max_fails=0;",
            upstream_lines,
        ),
        ("    listen 80;\n", f"    listen 127.0.0.1:{http_port};\n"),
        ("    listen [::]:80;\n", ""),
        ("    listen 443 ssl;\n", f"    listen 127.0.0.1:{tls_port} ssl;\n"),
        ("/etc/ssl/levity/server.crt", str(certificates.server_cert)),
        ("/etc/ssl/levity/server.key", str(certificates.server_key)),
        ("/etc/ssl/levity/charge-point-ca.crt", str(certificates.ca)),
        ("/srv/levity/staticfiles/", f"{static_root}/"),
    ]
    for old, new in replacements:
        assert old in text, f"{old!r} is no longer in {NGINX_CONF.name}: update the test's rendering"
        text = text.replace(old, new)
    # The IPv6 TLS listener (with its comment) goes: the test listens on 127.0.0.1 only.
    lines = [line for line in text.splitlines() if not line.strip().startswith("listen [::]:443")]
    return "\n".join(lines) + "\n"


class NginxServer(ServerProcess):
    """Debian's nginx in the foreground, with a temp prefix and the rendered levity.conf."""

    def __init__(self, prefix: Path, levity_conf: str, tls_port: int, http_port: int):
        self.prefix = prefix
        self.tls_port = tls_port
        self.http_port = http_port
        for name in ("logs", "temp"):
            (prefix / name).mkdir(parents=True, exist_ok=True)
        (prefix / "levity.conf").write_text(levity_conf)
        # As root, nginx's workers would run as nobody, who cannot read pytest's
        # private temp directories (the static files).
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/logs/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {prefix}/logs/access.log;\n"
            f"    client_body_temp_path {prefix}/temp/body;\n"
            f"    proxy_temp_path {prefix}/temp/proxy;\n"
            f"    fastcgi_temp_path {prefix}/temp/fastcgi;\n"
            f"    uwsgi_temp_path {prefix}/temp/uwsgi;\n"
            f"    scgi_temp_path {prefix}/temp/scgi;\n"
            f"    include {prefix}/levity.conf;\n"
            "}\n"
        )
        argv = [
            require_program("nginx", "nginx"),
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "logs" / "error.log"),
        ]
        super().__init__("nginx", argv, tls_port, prefix / "logs" / "stdout.log")

    def check(self) -> None:
        """``nginx -t`` on the rendered configuration."""
        result = subprocess.run([*self.argv, "-t"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr

    def error_log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text(errors="replace")

    def wss_url(self, charge_point_id: str) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ocpp/{charge_point_id}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"


def systemd_exec_start(port: int) -> list[str]:
    """deploy/systemd/levity@.service's ExecStart for instance ``port``, with this checkout's Python."""
    [line] = re.findall(r"^ExecStart=(.+)$", (SYSTEMD_DIR / "levity@.service").read_text(), flags=re.M)
    argv = shlex.split(line.replace("%i", str(port)))
    assert argv[0] == INSTALL_PYTHON, argv
    return [sys.executable, *argv[1:]]


def proxied_daphne(env: dict[str, str], log_path: Path, port: int | None = None) -> DaphneServer:
    """A Levity process exactly as deploy/systemd/levity@.service starts one (--proxy-headers)."""
    server = DaphneServer(env, log_path, port)
    server.argv = systemd_exec_start(server.port)
    assert "--proxy-headers" in server.argv
    return server


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def issue_api_token(database_url: str) -> str:
    """An API token stored straight into Levity's PostgreSQL database (only its SHA-256)."""
    import psycopg

    plaintext = "lvt_" + secrets.token_urlsafe(32)
    with psycopg.connect(database_url) as db:
        db.execute(
            "INSERT INTO chargepoints_apitoken (name, kind, scope, token_hash, prefix, created_at) "
            "VALUES ('deploy tests', 'api', 'commands', %s, %s, now())",
            (hashlib.sha256(plaintext.encode()).hexdigest(), plaintext[:12]),
        )
    return plaintext


__all__ = [
    "Certificates", "NginxServer", "free_port", "issue_api_token", "make_certificates",
    "migrate", "proxied_daphne", "render_levity_conf", "require_program", "rows",
]  # fmt: skip
