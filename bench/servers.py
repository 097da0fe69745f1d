"""The servers under test, each a subprocess on 127.0.0.1 pinned to a CPU.

Every server listens with the same accept backlog (1024): a deployment setting,
not a property of the software, and the reconnect storm would otherwise measure
the kernel's SYN retries (Twisted's default backlog is 50, asyncio's 100).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent
BACKLOG = 1024
BENCH_SECRET_KEY = "levity-bench-not-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def levity_env(database_path: Path, **extra: str) -> dict[str, str]:
    """Levity with its default settings, on a SQLite file in a temporary directory."""
    env = base_env()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "levity_site.settings",
            "DATABASE_URL": f"sqlite:///{database_path}",
            "SECRET_KEY": BENCH_SECRET_KEY,
        }
    )
    env.update(extra)
    return env


def daphne_argv(port: int, application: str) -> list[str]:
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}"
    return [sys.executable, "-m", "daphne", "-e", endpoint, application]


class Server:
    """A server subprocess: started, watched (CPU, RSS), stopped."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        log_dir: Path,
        cpu: int | None = 0,
    ):
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.cpu = cpu
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin,
        )
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

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


class Redis:
    """A throwaway redis-server on a free port (for REDIS_URL runs)."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="levity-bench-redis-"))
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self._log = open(self.log_dir / f"redis-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                self.ps = psutil.Process(self.process.pid)
                return self
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
