"""Shared fixtures: a real daphne server on a free port, and real OCPP clients.

The test database is one that both the test process (for assertions) and the daphne
subprocesses (the servers under test) open: a SQLite file, or with
``LEVITY_TEST_DATABASE=postgresql`` a database on a throwaway PostgreSQL server
this session starts (tests/postgres_server.py). Tests that touch it use
``@pytest.mark.django_db(transaction=True)`` so their rows are committed and the
server sees them. Tests marked ``sqlite`` (``postgresql``) are about that database
itself and run on it only; those marked ``once`` do not depend on the database and
run in the SQLite pass only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import serve
from websockets.typing import Subprotocol

from bench.processes import ServerProcess, free_port
from tests.ocpp_client import OCPPClient

PROJECT_DIR = Path(__file__).resolve().parent.parent
#: The test servers' LEVITY_METRICS_TOKEN.
METRICS_TOKEN = "levity-tests-metrics-token"

pytest_plugins = ["tests.services", "tests.admin_fixtures", "tests.postgres_server"]

#: The database the suite runs on: "sqlite" or "postgresql" (scripts/test runs both).
TEST_DATABASE = os.environ.get("LEVITY_TEST_DATABASE", "sqlite") or "sqlite"
#: The test database's URL for the servers under test, once the session has set it up.
_test_database_url: str | None = None


def pytest_configure(config) -> None:
    if TEST_DATABASE not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"LEVITY_TEST_DATABASE={TEST_DATABASE!r}: use sqlite or postgresql")
    config.addinivalue_line("markers", "sqlite: about SQLite itself; runs on SQLite only")
    config.addinivalue_line("markers", "postgresql: about PostgreSQL itself; runs on PostgreSQL only")
    config.addinivalue_line(
        "markers", "once: does not depend on the test database; runs in the SQLite pass only"
    )


def pytest_report_header(config) -> str:
    from tests.services import CI

    return f"test database: {TEST_DATABASE}" + (" (CI=true: a skip is a failure)" if CI else "")


def pytest_collection_modifyitems(config, items) -> None:
    """Deselect (not skip) the tests about the other database, and on PostgreSQL those run once."""

    def elsewhere(item) -> bool:
        if TEST_DATABASE == "sqlite":
            return bool(item.get_closest_marker("postgresql"))
        return bool(item.get_closest_marker("sqlite") or item.get_closest_marker("once"))

    deselected = [item for item in items if elsewhere(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not elsewhere(item)]


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str | None = None,
) -> Any:
    """Wait until ``check()`` holds, and return what it returned.

    ``check`` takes no arguments and may be sync or async. It holds when it returns
    something truthy without raising AssertionError; it is tried every ``interval``
    seconds until ``timeout``, then the test fails with its last AssertionError or
    with its last value (named ``what``, if given). This is how a test waits for what
    the server does after it has answered (a row written at disconnect, a log line, a
    metric): on the condition, with a generous bound, never on a fixed sleep. It is
    the suite's one polling helper: a test that waits for anything uses it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        failure: AssertionError | None = None
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except AssertionError as exc:
            failure, result = exc, None
        if failure is None and result:
            return result
        if loop.time() >= deadline:
            if failure is not None:
                raise failure
            name = what or getattr(check, "__qualname__", repr(check))
            raise AssertionError(f"{name} did not hold within {timeout} s (last value: {result!r})")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def test_db_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("db") / "levity-test.sqlite3"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, test_db_path):
    """SQLite: a file database (not :memory:) so the daphne subprocesses share it.

    PostgreSQL: the default database becomes one on this session's throwaway server,
    configured as settings.py configures a DATABASE_URL. The servers under test use
    the connection pool; this process does not, so that no pooled connection keeps
    the test database from being dropped at the end.
    """
    global _test_database_url
    from django.conf import settings
    from django.db import connections

    default = settings.DATABASES["default"]
    if TEST_DATABASE == "sqlite":
        default.setdefault("TEST", {})["NAME"] = str(test_db_path)
        _test_database_url = f"sqlite:///{test_db_path}"
        return
    from levity_site.settings import _database

    server = request.getfixturevalue("postgres_server")
    default.clear()
    default.update(_database(server.url("levity")))
    default.setdefault("OPTIONS", {}).pop("pool", None)
    default["TEST"] = {"NAME": "levity_test"}
    connections.configure_settings(None)  # Django's defaults for the keys not given
    for connection in connections.all(initialized_only=True):  # made for the old settings
        connection.close()
        del connections[connection.alias]
    _test_database_url = server.url("levity_test")


@pytest.fixture(scope="session")
def django_db_keepdb(request) -> bool:
    """PostgreSQL: the test database goes with its throwaway server; nothing to drop."""
    return TEST_DATABASE == "postgresql" or request.config.getvalue("reuse_db")


@pytest.fixture(scope="session")
def test_database_url(django_db_setup) -> str:
    """The URL of the test database (SQLite file or PostgreSQL database)."""
    assert _test_database_url is not None  # set by django_db_setup
    return _test_database_url


@pytest.fixture(scope="session", autouse=True)
def in_process_sessions_accept_unknown_charge_points():
    """Sessions served in the test process (the spec's third way) accept unknown ids,
    as the test servers do (server_env); the default, pending, is tested in
    tests/chargepoints/test_onboarding.py."""
    from django.test import override_settings

    with override_settings(LEVITY_UNKNOWN_CHARGE_POINTS="accept"):
        yield


class DaphneServer(ServerProcess):
    """A daphne process serving levity_site.asgi on 127.0.0.1:<port>."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        port = port or free_port()
        argv = [sys.executable, "-m", "levity_site.server", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("levity_site.asgi:application")
        super().__init__("daphne", argv, port, log_path, env=env, cwd=PROJECT_DIR)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charge_point_id}"

    async def wait_for_log(self, text: str, timeout: float = 10) -> str:
        """The server's log, once ``text`` is in it (after-hooks log a moment after the answer)."""

        def logged() -> str:
            log = self.log()
            assert text in log, f"{text!r} not in the server log:\n{log[-3000:]}"
            return log

        return await eventually(logged, timeout=timeout)


def server_env(test_db_path: Path, **overrides: str) -> dict[str, str]:
    """A server's environment on the SQLite file ``test_db_path`` (on PostgreSQL: the test database)."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "levity_site.settings",
            "DATABASE_URL": (
                _test_database_url
                if TEST_DATABASE == "postgresql" and _test_database_url
                else f"sqlite:///{test_db_path}"
            ),
            "SECRET_KEY": "levity-tests",
            "LEVITY_LAST_SEEN_FLUSH_SECONDS": "0.5",
            # Most tests connect charge points they did not register first; the
            # default (pending) is tested in tests/chargepoints/test_onboarding.py.
            "LEVITY_UNKNOWN_CHARGE_POINTS": "accept",
            # /metrics on the main port needs it (tests.plugins.metrics_page sends it).
            # Many tests share one server and address, and some send many messages:
            # the rate and handshake limits are off unless a test turns them on
            # (tests/chargepoints/test_limits.py).
            "LEVITY_CALL_RATE": "0",
            "LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS": "0",
            "LEVITY_METRICS_TOKEN": METRICS_TOKEN,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("REDIS_URL", None)
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, test_db_path, tmp_path_factory):
    """One daphne for the session, with the default settings."""
    server = DaphneServer(server_env(test_db_path), tmp_path_factory.mktemp("logs") / "daphne.log").start()
    yield server
    server.stop()


@pytest.fixture
def start_daphne(django_db_setup, test_db_path, tmp_path):
    """Start extra daphne servers with environment overrides (stopped after the test)."""
    servers = []

    def start(**overrides: str) -> DaphneServer:
        server = DaphneServer(
            server_env(test_db_path, **overrides), tmp_path / f"daphne-{len(servers)}.log"
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_daphne(django_db_setup, test_db_path, tmp_path_factory):
    """Start daphne servers with environment overrides that serve every test of the module.

    For tests that need a server with other settings than ``daphne_server``'s but not a
    process of their own: like ``daphne_server``, it outlives each test's rows, so what
    a test asserts must be about its own charge points (``cp_id``) and requests.
    """
    servers: list[DaphneServer] = []

    def start(**overrides: str) -> DaphneServer:
        log = tmp_path_factory.mktemp("daphne") / "daphne.log"
        server = DaphneServer(server_env(test_db_path, **overrides), log).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def cp_id() -> str:
    """A fresh charge point id per test, so sessions never collide."""
    return f"CP-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def connect(daphne_server):
    """Open OCPP 1.6 client sessions to the server (all closed after the test)."""
    clients: list[OCPPClient] = []

    async def open_client(charge_point_id: str, server=None, **kwargs) -> OCPPClient:
        client = await OCPPClient.open((server or daphne_server).ws_url(charge_point_id), **kwargs)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


class ThirdWayServer:
    """A websockets server in this process handing each connection to LevityChargePoint."""

    def __init__(self) -> None:
        self.port = 0
        self.ended: dict[str, asyncio.Event] = {}

    async def handler(self, connection) -> None:
        from chargepoints.ocpp16.session import LevityChargePoint

        charge_point_id = connection.request.path.rsplit("/", 1)[-1]
        ended = self.ended.setdefault(charge_point_id, asyncio.Event())
        try:
            await LevityChargePoint(charge_point_id, connection).start()
        finally:
            ended.set()

    def url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charge_point_id}"


@pytest.fixture
async def third_way() -> AsyncIterator[ThirdWayServer]:
    """Sessions served directly: a websockets server in this process, each connection a session."""
    server = ThirdWayServer()
    async with serve(server.handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as ws_server:
        server.port = ws_server.sockets[0].getsockname()[1]
        yield server


@pytest.fixture
def raw_ws(daphne_server):
    """A raw WebSocket (subprotocol ocpp1.6) for sending frames the ocpp package won't."""

    @contextlib.asynccontextmanager
    async def open_raw(charge_point_id: str, server=None):
        url = (server or daphne_server).ws_url(charge_point_id)
        async with websockets.connect(url, subprotocols=[Subprotocol("ocpp1.6")]) as ws:
            yield RawSession(ws)

    return open_raw


class RawSession:
    def __init__(self, ws):
        self.ws = ws

    async def send(self, frame) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv(self, timeout: float = 10):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def exchange(self, frame, timeout: float = 10):
        await self.send(frame)
        return await self.recv(timeout)


# --- the HTTP API ----------------------------------------------------------------


@pytest.fixture
def api_token(transactional_db) -> str:
    """The plaintext of a fresh API token (committed, so the server sees it)."""
    from chargepoints.models import ApiToken, ApiTokenScope

    return ApiToken.issue("tests", scope=ApiTokenScope.COMMANDS)[1]


@pytest.fixture
async def api(daphne_server, api_token):
    """An httpx client of the server's /api/v1/, authenticated with `api_token`."""
    import httpx

    async with httpx.AsyncClient(
        base_url=f"{daphne_server.http_url}/api/v1",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=30,
    ) as client:
        yield client
