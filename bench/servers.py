"""The servers under test, each a subprocess on 127.0.0.1 pinned to a CPU.

Every server listens with the same accept backlog (1024): a deployment setting,
not a property of the software, and the reconnect storm would otherwise measure
the kernel's SYN retries (Twisted's default backlog is 50, asyncio's 100).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import psutil

from .processes import RedisServer, ServerProcess, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The short hash of the checkout's HEAD, which a bench record names its run by."""
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"


BACKLOG = 1024
BENCH_SECRET_KEY = "levity-bench-not-secret"


def base_env() -> dict[str, str]:
    """The runner's environment minus anything that would change a server's defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEVITY_") and k not in {"REDIS_URL", "DATABASE_URL", "DEBUG"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(PROJECT_DIR)
    return env


#: The throughput scenarios drive each charge point far above any real one's message
#: rate, which the per-charge-point rate limit would refuse; bench/hostile_neighbour.py
#: measures Levity with it.
THROUGHPUT_LIMITS = {"LEVITY_CALL_RATE": "0"}


def levity_env(database_path: Path, **extra: str) -> dict[str, str]:
    """Levity with its default settings, on a SQLite file in a temporary directory.

    But for two: unknown charge points are accepted at once (as by the baselines),
    not registered Pending until an operator accepts them; and THROUGHPUT_LIMITS.
    """
    env = base_env()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "levity_site.settings",
            "DATABASE_URL": f"sqlite:///{database_path}",
            "SECRET_KEY": BENCH_SECRET_KEY,
            "LEVITY_UNKNOWN_CHARGE_POINTS": "accept",
            **THROUGHPUT_LIMITS,
        }
    )
    env.update(extra)
    return env


def daphne_argv(port: int, application: str) -> list[str]:
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}"
    return [sys.executable, "-m", "levity_site.server", "-e", endpoint, application]


class Watched(ServerProcess):
    """A server subprocess whose CPU time and memory psutil reads once it is started."""

    ps: psutil.Process

    def start(self, timeout: float = 60) -> Self:
        super().start(timeout)
        self.ps = psutil.Process(self.pid)
        return self

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return self.ps.memory_info().rss


class Server(Watched):
    """A server subprocess pinned to ``cpu``: started, watched (CPU, RSS), stopped."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        log_dir: Path,
        cpu: int | None = 0,
    ):
        super().__init__(
            name, argv, port, log_dir / f"{name}-{port}.log",
            env=env, cwd=PROJECT_DIR, cpu=cpu, stop_timeout=15,
        )  # fmt: skip

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_quiet(self, threshold: float = 0.15, timeout: float = 30) -> float:
        """Wait until the server's CPU use falls below `threshold` (leftover work done)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        share = 1.0
        while time.monotonic() < deadline and quiet < 2:
            before = self.cpu_seconds()
            time.sleep(0.25)
            share = (self.cpu_seconds() - before) / 0.25
            quiet = quiet + 1 if share < threshold else 0
        return share


class Redis(RedisServer, Watched):
    """A throwaway redis-server on a free port (for REDIS_URL runs)."""

    def __init__(self, log_dir: Path):
        port = free_port()
        directory = Path(tempfile.mkdtemp(prefix="levity-bench-redis-"))
        super().__init__(directory, port, log_dir / f"redis-{port}.log")

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, timeout: float = 20) -> Self:
        return super().start(timeout)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
