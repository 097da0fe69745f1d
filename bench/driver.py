"""Starting load generator processes, synchronising them, and merging what they measured."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .servers import PROJECT_DIR, base_env

#: Source addresses for many connections (all loopback; avoids ephemeral-port limits).
SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 34)]


class Worker:
    """One `python -m bench.loadgen` process and its line-based conversation."""

    def __init__(self, config: dict):
        self.config = config
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", json.dumps(config)],
            cwd=PROJECT_DIR,
            env=base_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        stdin, stdout, stderr = self.process.stdin, self.process.stdout, self.process.stderr
        assert stdin is not None and stdout is not None and stderr is not None  # PIPEs above
        self._stdin, self._stdout, self._stderr = stdin, stdout, stderr
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_err(self) -> None:
        for line in self._stderr:
            if len(self.stderr) < 200:
                self.stderr.append(line)

    def expect(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"load generator: no {event!r} in {timeout:.0f}s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"load generator exited before {event!r}:\n{''.join(self.stderr[-20:])}")
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("event") == event:
                return message

    def send(self, line: str) -> None:
        self._stdin.write(line + "\n")
        self._stdin.flush()

    def finish(self, timeout: float = 30) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts)]


@dataclass
class Group:
    """Several workers started together on one set of charge points."""

    workers: list[Worker] = field(default_factory=list)
    ready: list[dict] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        urls: list[str],
        scenario: str,
        cp_ids: list[str],
        procs: int,
        cpu: int | None,
        warmup: float = 0,
        duration: float = 0,
        timeout: float = 30,
        connect_concurrency: int = 100,
        use_source_addresses: bool = False,
        ready_timeout: float = 300,
        open_timeout: float = 30,
    ) -> Group:
        """`urls`: one base URL, or one per worker (charge points split across servers)."""
        indices = list(range(len(cp_ids)))
        group = cls()
        for k, (idx, ids) in enumerate(zip(split(indices, procs), split(cp_ids, procs), strict=True)):
            config = {
                "url": urls[k % len(urls)],
                "scenario": scenario,
                "cp_ids": ids,
                "indices": idx,
                "warmup": warmup,
                "duration": duration,
                "timeout": timeout,
                "cpu": cpu,
                "connect_concurrency": connect_concurrency,
                "open_timeout": open_timeout,
                "source_address": SOURCE_ADDRESSES[k % len(SOURCE_ADDRESSES)]
                if use_source_addresses
                else None,
            }
            group.workers.append(Worker(config))
        try:
            for worker in group.workers:
                group.ready.append(worker.expect("ready", ready_timeout))
        except Exception:
            group.kill()
            raise
        return group

    @property
    def connected(self) -> int:
        return sum(r.get("connected", 0) for r in self.ready)

    def setup_errors(self) -> dict[str, int]:
        return merge_counts([r.get("errors") or {} for r in self.ready])

    def go(self, lead: float = 0.3) -> float:
        t0 = time.monotonic() + lead
        for worker in self.workers:
            worker.send(f"go {t0}")
        return t0

    def results(self, timeout: float, *, release: bool = False) -> list[dict]:
        """Every worker's result; ``release`` tells workers holding their connections to close them."""
        out = [worker.expect("result", timeout) for worker in self.workers]
        for worker in self.workers:
            if release:
                worker.send("release")
            worker.finish()
        return out

    def close(self, timeout: float = 120) -> list[dict]:
        for worker in self.workers:
            worker.send("close")
        return self.results(timeout)

    def kill(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def latency_summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p90_ms": percentile(ordered, 90),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1] if ordered else None,
    }
