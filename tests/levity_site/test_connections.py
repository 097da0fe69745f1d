"""A server process closes each HTTP request's database connections when it ends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def open_database_files(pid: int, database: Path) -> int:
    """How many descriptors of the process refer to the SQLite database file itself."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(database):
                count += 1
        except OSError:  # closed meanwhile
            continue
    return count


async def test_api_requests_leave_no_database_connection_open(daphne_server, api, test_db_path):
    await api.get("/charge-points")  # the process's own connections are open from here on
    before = open_database_files(daphne_server.process.pid, test_db_path)
    for _ in range(40):
        assert (await api.get("/charge-points")).status_code == 200
    assert open_database_files(daphne_server.process.pid, test_db_path) == before

