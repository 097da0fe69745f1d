"""A throwaway PostgreSQL server for tests, from the installed Debian binaries.

Loaded as a plugin by tests/conftest.py: the session-scoped ``postgres_server``
fixture starts one server (bench.processes.PostgresServer: initdb + pg_ctl in a
temp dir, on a free port, trust auth on 127.0.0.1 only) and removes it afterwards.
``scripts/test`` installs PostgreSQL (scripts/provision); where it is still missing,
the tests that need it are skipped, saying why (under CI=true they fail).
"""

from __future__ import annotations

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
