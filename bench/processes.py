"""A server subprocess on 127.0.0.1: started, waited for, logged to a file, stopped.

The one way the benchmark (bench/servers.py) and the tests (daphne, Prometheus,
redis-server and PostgreSQL in tests/) run the servers they talk to. Standard
library only (psycopg, a dependency of Levity, to create a database), so the tests
can import it without the benchmark's dependencies.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Self


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server subprocess listening on 127.0.0.1:``port``, stdout and stderr in ``log_path``.

    ``start()`` returns once ``ready()`` (by default: the port accepts a connection);
    if the process exits first or is not ready in time, it is stopped and the error
    carries the end of its log. ``cpu`` pins the process to one CPU.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        cpu: int | None = None,
        stop_timeout: float = 10,
    ):
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.cpu = cpu
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self._log: BinaryIO | None = None

    def start(self, timeout: float = 30) -> Self:
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin if cpu is not None else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}:\n{self.tail()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} was not ready on port {self.port} in {timeout:.0f}s; "
            f"see {self.log_path}:\n{self.tail()}"
        )

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
            return True
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``stop_timeout``."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 50) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


class RedisServer(ServerProcess):
    """A throwaway redis-server on a free port: no persistence, its files in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, log_path: Path | None = None):
        port = port or free_port()
        argv = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
        ]  # fmt: skip
        super().__init__("redis-server", argv, port, log_path or directory / "redis.log")
        self.directory = directory

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/<major>/bin)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir, listening on 127.0.0.1:<port>.

    initdb + pg_ctl, trust authentication on 127.0.0.1 only, durability off (fsync,
    synchronous_commit, full_page_writes: nothing here outlives the run); each
    connection is logged.
    PostgreSQL refuses to run as root, so as root every server command runs as the
    ``postgres`` user (which Debian's package creates) through ``runuser``. ``cpu``
    pins the server's processes to one CPU.
    """

    def __init__(self, bin_dir: Path, cpu: int | None = None):
        self.bin_dir = bin_dir
        self.cpu = cpu
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
        cpu = self.cpu
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )  # fmt: skip
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
        self.resume()
        return self

    def resume(self) -> None:
        """Start the cluster's server (again, after ``halt()``), on the same port and data."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_connections=on"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def halt(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def log(self) -> str:
        """The server's log (one line per connection, among others)."""
        return (self.base / "server.log").read_text(errors="replace")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pids(self) -> list[int]:
        """The postmaster's pid and those of its children (backends, writers)."""
        import psutil

        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(postmaster)
        return [postmaster, *(child.pid for child in main.children(recursive=True))]

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
