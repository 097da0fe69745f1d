"""A throwaway PostgreSQL server for tests, from the installed Debian binaries.

Loaded as a plugin by tests/conftest.py: the session-scoped ``postgres_server``
fixture starts one server (bench.processes.PostgresServer: initdb + pg_ctl in a
temp dir, on a free port, trust auth on 127.0.0.1 only) and removes it afterwards.
``migrated_postgres`` is a database on it migrated by ``manage.py migrate``, as an
operator migrates one, for the tests that serve from it and read the rows back with
``rows`` (psycopg, not Django). ``scripts/test`` installs PostgreSQL
(scripts/provision); where it is still missing, the tests that need it are skipped,
saying why (under CI=true they fail).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.processes import PostgresServer, postgres_bin_dir
from tests.services import unavailable


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


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server, tmp_path_factory) -> str:
    """The URL of a fresh database on ``postgres_server``, migrated by ``manage.py migrate``."""
    from tests.conftest import PROJECT_DIR, server_env

    url = postgres_server.create_database("levity_migrated")
    env = server_env(tmp_path_factory.mktemp("unused") / "unused.sqlite3", DATABASE_URL=url)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return url


def rows(database_url: str, query: str, *params) -> list[tuple]:
    """The rows of ``query``, read with psycopg straight from the database."""
    import psycopg

    with psycopg.connect(database_url) as db:
        return db.execute(query, params).fetchall()
