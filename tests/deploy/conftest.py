"""The production topology of deploy/, started once for the tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from bench.processes import RedisServer
from tests.conftest import DaphneServer, server_env
from tests.deploy.topology import (
    Certificates,
    NginxServer,
    free_port,
    issue_api_token,
    make_certificates,
    migrate,
    proxied_daphne,
    render_levity_conf,
    require_program,
)

#: A file nginx serves from the static directory, never reaching Levity.
STATIC_PROBE = "levity-deploy-probe.txt"


@dataclass
class Topology:
    database_url: str
    redis_url: str
    levity: list[DaphneServer]
    nginx: NginxServer
    certificates: Certificates
    api_token: str


@pytest.fixture(scope="session")
def topology(postgres_server, tmp_path_factory) -> Iterator[Topology]:
    """PostgreSQL, Redis, two Levity processes (--proxy-headers) and nginx with TLS in front."""
    require_program("redis-server", "redis-server")
    require_program("nginx", "nginx")
    work = tmp_path_factory.mktemp("topology")
    database_url = postgres_server.create_database("levity_topology")
    redis = RedisServer(work).start(timeout=10)
    env = server_env(
        work / "unused.sqlite3",
        DATABASE_URL=database_url,
        REDIS_URL=redis.url,
        LEVITY_COMMAND_ROUTE_TIMEOUT="2",
    )
    migrate(env)
    levity = [proxied_daphne(env, work / f"levity-{n}.log") for n in range(2)]
    certificates = make_certificates(work)
    static_root = work / "static"
    static_root.mkdir()
    (static_root / STATIC_PROBE).write_text("served by nginx\n")
    tls_port, http_port = free_port(), free_port()
    nginx = NginxServer(
        work / "nginx",
        render_levity_conf(
            upstreams=[server.port for server in levity],
            tls_port=tls_port,
            http_port=http_port,
            certificates=certificates,
            static_root=static_root,
        ),
        tls_port,
        http_port,
    )
    try:
        nginx.check()
        # The two processes start side by side (each start() waits for its port).
        with ThreadPoolExecutor(len(levity)) as pool:
            for started in pool.map(lambda server: server.start(timeout=60), levity):
                assert started.alive()
        nginx.start(timeout=30)
        yield Topology(database_url, redis.url, levity, nginx, certificates, issue_api_token(database_url))
    finally:
        for server in (nginx, *levity):
            server.stop()
        redis.stop()
