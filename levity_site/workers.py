"""``python -m levity_site.server --workers N``: N server processes on one port.

This process (the supervisor) opens one listening socket per worker, all bound to
the same address with ``SO_REUSEPORT``, and starts each worker -- the usual
``levity_site.server`` with the same options -- on its socket (daphne's ``--fd``).
The kernel spreads new connections over the sockets, so charge points and HTTP
requests are shared out among the workers with no proxy in front; each worker is
a whole Levity server (its own event loop, database connections and
ServerProcess row). With ``REDIS_URL`` a command reaches a charge point through
any worker; without it, commands would reach only the charge points of the
worker that took the request, so ``--workers`` above 1 requires it.

A worker that dies or stops is started again, on a socket of its own (the charge
points it held reconnect, to any worker). One that fails -- exits with a status
above 0, not killed by a signal -- within ``QUICK_EXIT_SECONDS`` of its start stops
them all: it could not start, and would only fail again. SIGTERM or SIGINT is passed
on to every worker, which ends its sessions as daphne stops (see
levity_site.server); the supervisor exits once they have.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import time

logger = logging.getLogger("levity.workers")

#: A worker that fails (exit status above 0) sooner than this after its start is not
#: restarted: it could not start (start-up takes seconds; on a loaded machine, tens).
QUICK_EXIT_SECONDS = 60.0
#: How long workers get to stop after SIGTERM before they are killed.
STOP_SECONDS = 30.0
BACKLOG = 1024


class Supervisor:
    def __init__(self, workers: int, host: str, port: int, worker_args: list[str]):
        self.workers = workers
        self.host = host
        self.port = port
        self.worker_args = worker_args
        self.running: dict[int, tuple[subprocess.Popen, float]] = {}  # slot -> (process, started)
        self.stopping = False

    def listening_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(BACKLOG)
        self.port = sock.getsockname()[1]  # port 0: the first socket's port for all
        return sock

    def start_worker(self, slot: int) -> None:
        sock = self.listening_socket()
        fd = sock.fileno()
        argv = [sys.executable, "-m", "levity_site.server", "--workers", "1", "--fd", str(fd)]
        process = subprocess.Popen([*argv, *self.worker_args], pass_fds=(fd,))
        sock.close()  # the worker holds it now; a dead worker's socket leaves the group
        self.running[slot] = (process, time.monotonic())
        logger.info("Worker %d started (pid %d) on %s:%d", slot, process.pid, self.host, self.port)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in range(self.workers):
            self.start_worker(slot)
        print(
            f"Levity: {self.workers} worker processes on {self.host}:{self.port} "
            f"(pids {', '.join(str(p.pid) for p, _ in self.running.values())})",
            file=sys.stderr,
            flush=True,
        )
        while not self.stopping:
            for slot, (process, started) in list(self.running.items()):
                code = process.poll()
                if code is None or self.stopping:
                    continue
                if code > 0 and time.monotonic() - started < QUICK_EXIT_SECONDS:
                    print(
                        f"Levity: worker {slot} (pid {process.pid}) exited with {code} "
                        f"within {QUICK_EXIT_SECONDS:g} s of its start; stopping all workers",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.stop_all()
                    return 1
                logger.warning(
                    "Worker %d (pid %d) exited with %s; starting it again", slot, process.pid, code
                )
                self.start_worker(slot)
            time.sleep(0.2)
        self.stop_all()
        return 0

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def stop_all(self) -> None:
        processes = [process for process, _ in self.running.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("Worker pid %d did not stop in %g s; killing it", process.pid, STOP_SECONDS)
                process.kill()
                process.wait()


def supervise(workers: int, argv: list[str], daphne_args: argparse.Namespace) -> int:
    """Run ``workers`` server processes on the address of ``-b``/``-p`` in ``argv``."""
    from django.conf import settings

    if daphne_args.unix_socket or daphne_args.file_descriptor is not None or daphne_args.socket_strings:
        return _refuse(
            "--workers needs a TCP address given with -b/--bind and -p/--port (not -u, --fd or -e)"
        )
    if not settings.REDIS_URL:
        return _refuse(
            f"--workers {workers} needs REDIS_URL: without a shared channel layer a command "
            "reaches only the charge points of the process that takes the request"
        )
    if settings.LEVITY_METRICS_PORT and not settings.PROMETHEUS_MULTIPROC_DIR:
        return _refuse(
            f"--workers {workers} with LEVITY_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR "
            "(an empty directory), so that /metrics covers every worker"
        )
    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    own.add_argument("-b", "--bind", dest="host", default="127.0.0.1")
    own.add_argument("-p", "--port", type=int, default=8000)
    own.add_argument("--workers", type=int)
    known, worker_args = own.parse_known_args(argv)
    if ":" in known.host:
        return _refuse(f"--workers listens on IPv4 addresses only, not {known.host}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return Supervisor(workers, known.host, known.port, worker_args).run()
    except OSError as exc:
        return _refuse(f"cannot listen on {known.host}:{known.port}: {exc.strerror or exc}")


def _refuse(message: str) -> int:
    print(f"Levity configuration error: {message}", file=sys.stderr)
    return 2
