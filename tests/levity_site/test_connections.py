"""A server process closes each HTTP request's database connections when it ends.

On PostgreSQL they go back to the process's pool: the number of connections to the
server stays the same however many requests come.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.conftest import eventually

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


def open_database_connections(pid: int, database_url: str, database: Path) -> int:
    """The process's SQLite file descriptors, or its TCP connections to PostgreSQL."""
    if database_url.startswith("sqlite:"):
        return open_database_files(pid, database)
    port = urlsplit(database_url).port
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in connections if c.raddr and c.raddr.port == port)


async def test_api_requests_leave_no_database_connection_open(
    daphne_server, api, test_db_path, test_database_url
):
    await api.get("/charge-points")  # the process's own connections are open from here on
    pid = daphne_server.process.pid
    before = open_database_connections(pid, test_database_url, test_db_path)
    assert before > 0
    for _ in range(40):
        assert (await api.get("/charge-points")).status_code == 200

    async def no_more_than_before() -> bool:
        # The server's other threads (the sessions' writes, the SQLite checkpoints)
        # may be reopening a connection past its CONN_MAX_AGE at this moment: one more
        # for a while. A request that leaked its connection would leave 40 more.
        return open_database_connections(pid, test_database_url, test_db_path) <= before

    await eventually(no_more_than_before, timeout=10, what="the requests' connections closed")


def connections_opened(postgres_server, database: str) -> int:
    return postgres_server.log().count(f"connection authorized: user=postgres database={database}")


@pytest.mark.postgresql
async def test_postgresql_connections_come_from_the_pool_and_are_reused(
    daphne_server, api, postgres_server, test_database_url, cp_id, connect
):
    client = await connect(cp_id)
    await client.boot()  # the sessions' database thread has had a connection from the pool
    await api.get("/charge-points")
    database = urlsplit(test_database_url).path.lstrip("/")
    before = connections_opened(postgres_server, database)
    assert before > 0
    for _ in range(20):
        assert (await api.get("/charge-points")).status_code == 200
        await client.status(1, "Available")
    # 40 units of database work, and no new connection (without the pool: one per request).
    assert connections_opened(postgres_server, database) == before
