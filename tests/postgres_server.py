"""A throwaway PostgreSQL server for tests, from the installed Debian binaries.

Loaded as a plugin by tests/conftest.py: the session-scoped ``postgres_server``
fixture starts one server (initdb + pg_ctl in a temp dir, on a free port, trust
auth on 127.0.0.1 only) and removes it afterwards. PostgreSQL refuses to run as
root, so as root (CI) every server command runs as the ``postgres`` user through
``runuser``. ``scripts/test`` installs PostgreSQL (scripts/provision); where it is
still missing, the tests that need it are skipped, saying why (under CI=true they fail).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.services import unavailable


def postgres_bin_dir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    return Path(candidates[-1]) if candidates else None


class PostgresServer:
    """One PostgreSQL cluster in a temp dir, listening on 127.0.0.1:<port>."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="levity-pg-"))
        self.data = self.base / "data"
        self.as_root = os.geteuid() == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> PostgresServer:
        if self.as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable(
            "PostgreSQL is not installed (enable: sudo apt-get install postgresql, "
            "or run ./scripts/test as root)"
        )
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()
