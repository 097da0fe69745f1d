"""The hostile neighbour: one charge point floods Levity while N others keep heartbeating.

    python bench/hostile_neighbour.py           # three full runs, results in bench/results/
    python bench/hostile_neighbour.py --quick   # smoke run (seconds), results in bench/results/tmp/

For each of two servers -- Levity with its default limits, and Levity with the
per-charge-point limits switched off (``LEVITY_CALL_RATE=0``, queues unbounded) --
N well-behaved charge points send a Heartbeat every ``interval`` seconds (with
jitter) and measure each answer's latency: first ``quiet`` seconds alone, then
``flood`` seconds while one more charge point sends Heartbeats as fast as its
socket allows (reading and discarding the answers, reconnecting whenever it is
closed). The figures are the neighbours' p50/p99 quiet and under flood.

The server is pinned to CPU 0, the flooder (its own process) and the neighbours
to CPU 1, as in bench/run.py.

One run is not a measurement on a shared machine: the full run measures each
server ``--runs`` times (3; the servers taking turns) and reports each figure's
median with its range; every run's own figures are kept in the JSON (``each_run``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import websockets
from websockets.typing import Subprotocol

from bench.driver import latency_summary
from bench.servers import (
    PROJECT_DIR,
    THROUGHPUT_LIMITS,
    Server,
    daphne_argv,
    free_port,
    git_commit,
    levity_env,
)

SERVER_CPU = 0
LOAD_CPU = 1
#: The per-charge-point limits switched off (the frame size limit stays: it is daphne's too).
WITHOUT_LIMITS = {
    "LEVITY_CALL_RATE": "0",
    "LEVITY_MAX_QUEUED_CALLS": "1000000",
    "LEVITY_MAX_QUEUED_FRAMES": "1000000",
}


def pin(cpu: int) -> None:
    if cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


# --- the flooder (its own process) ----------------------------------------------------


def _masked(payload: bytes) -> bytes:
    header = struct.pack("!BB", 0x81, 0x80 | len(payload))  # payloads here are < 126 bytes
    return header + b"\0\0\0\0" + payload  # a zero mask leaves the payload as it is


def _open_raw(port: int, charge_point_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ocpp/{charge_point_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    sock.settimeout(None)
    return sock


def flood(
    port: int, charge_point_id: str, start_at: float, seconds: float, out: multiprocessing.Queue
) -> None:
    """From ``start_at`` (time.monotonic(), system-wide), send Heartbeats as fast as the
    socket allows for ``seconds``; report what happened."""
    pin(LOAD_CPU)
    batch = b"".join(_masked(json.dumps([2, f"f{n}", "Heartbeat", {}]).encode()) for n in range(500))
    sent = connections = refused = 0
    received = [0]
    time.sleep(max(0.0, start_at - time.monotonic()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock = _open_raw(port, charge_point_id)
        except (OSError, ConnectionError):
            refused += 1
            time.sleep(0.05)
            continue
        connections += 1

        def read(sock: socket.socket = sock) -> None:
            try:
                while chunk := sock.recv(65536):
                    received[0] += len(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while time.monotonic() < deadline:
                sock.sendall(batch)
                sent += 500
        except OSError:
            pass
        finally:
            sock.close()
            reader.join(1)
    out.put(
        {"frames_sent": sent, "connections": connections, "refused": refused, "bytes_received": received[0]}
    )


# --- the neighbours --------------------------------------------------------------------


async def neighbour(url: str, interval: float, phases: dict[str, tuple[float, float]], out: dict) -> None:
    async with websockets.connect(url, subprotocols=[Subprotocol("ocpp1.6")], max_queue=None) as ws:
        boot = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}
        await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        await ws.recv()
        n = 0
        end = max(stop for _, stop in phases.values())
        await asyncio.sleep(random.uniform(0, interval))
        while time.monotonic() < end:
            n += 1
            started = time.monotonic()
            await ws.send(json.dumps([2, f"hb{n}", "Heartbeat", {}]))
            while True:
                answer = json.loads(await ws.recv())
                if answer[1] == f"hb{n}":
                    break
            latency_ms = (time.monotonic() - started) * 1000
            for phase, (start, stop) in phases.items():
                if start <= started < stop:
                    out[phase].append(latency_ms)
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))


async def measure(port: int, neighbours: int, interval: float, quiet: float, flood_seconds: float) -> dict:
    """The neighbours' latencies, quiet and during a flood, on one running server."""
    pin(LOAD_CPU)
    settle = 3.0  # connections, boots and the flooder's start-up done before the quiet phase counts
    t0 = time.monotonic() + settle
    phases = {"quiet": (t0, t0 + quiet), "flood": (t0 + quiet + 0.5, t0 + quiet + flood_seconds)}
    latencies: dict[str, list[float]] = {"quiet": [], "flood": []}
    base = f"ws://127.0.0.1:{port}/ocpp/"
    tasks = [
        asyncio.create_task(neighbour(f"{base}NEIGHBOUR-{i}", interval, phases, latencies))
        for i in range(neighbours)
    ]
    # Started now, so that its start-up is over before the quiet phase is measured.
    report: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    flooder = multiprocessing.get_context("spawn").Process(
        target=flood, args=(port, "FLOODER", t0 + quiet, flood_seconds, report)
    )
    flooder.start()
    await asyncio.gather(*tasks)
    flood_report = await asyncio.to_thread(report.get, True, flood_seconds + 30)
    await asyncio.to_thread(flooder.join, 10)
    return {
        "quiet": latency_summary(latencies["quiet"]),
        "flood": latency_summary(latencies["flood"]),
        "flooder": flood_report,
    }


def migrate(database: Path) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=PROJECT_DIR,
        env=levity_env(database),
        check=True,
    )


def run_one(name: str, extra_env: dict[str, str], args: argparse.Namespace, log_dir: Path) -> dict:
    database = Path(tempfile.mkdtemp(prefix="levity-hostile-")) / "levity.db"
    migrate(database)
    port = free_port()
    env = levity_env(database, LOG_LEVEL="WARNING")
    for setting in THROUGHPUT_LIMITS:  # Levity's own defaults, unless extra_env says otherwise
        env.pop(setting)
    env.update(extra_env)
    server = Server(
        f"levity-{name}",
        daphne_argv(port, "levity_site.asgi:application"),
        env,
        port,
        log_dir,
        cpu=SERVER_CPU if (os.cpu_count() or 1) > SERVER_CPU else None,
    ).start()
    try:
        result = asyncio.run(measure(port, args.neighbours, args.interval, args.quiet, args.flood))
        result["server_rss_mb"] = round(server.rss() / 2**20, 1)
    finally:
        server.stop()
    result["ratio_p99"] = (
        round(result["flood"]["p99_ms"] / result["quiet"]["p99_ms"], 2)
        if result["flood"]["p99_ms"] and result["quiet"]["p99_ms"]
        else None
    )
    result["settings"] = extra_env
    return result


#: The figures of a run that are summarised over several: (section, key), section "" for the run's own.
FIGURES = [
    ("quiet", "p50_ms"),
    ("quiet", "p99_ms"),
    ("quiet", "count"),
    ("flood", "p50_ms"),
    ("flood", "p99_ms"),
    ("flood", "count"),
    ("flooder", "frames_sent"),
    ("flooder", "connections"),
    ("", "server_rss_mb"),
    ("", "ratio_p99"),
]


def median_run(runs: list[dict]) -> dict:
    """Several runs of one server as one: each figure's median, and its range under ``range``."""
    median: dict = {"quiet": {}, "flood": {}, "flooder": {}, "range": {}, "runs": len(runs)}
    for section, key in FIGURES:
        values = [(run[section] if section else run)[key] for run in runs]
        values = [value for value in values if value is not None]
        middle = statistics.median(values) if values else None
        (median[section] if section else median)[key] = middle
        median["range"][f"{section}.{key}" if section else key] = (
            [min(values), max(values)] if values else None
        )
    median["settings"] = runs[0]["settings"]
    return median


def _cell(row: dict, section: str, key: str, unit: str = "") -> str:
    """A figure of ``row`` as text; after it, for several runs, its range."""
    counted = key in ("count", "frames_sent", "connections")  # a median of two may end in .5
    style = ",.0f" if counted else ".2f" if key == "ratio_p99" else ".1f"
    text = f"{(row[section] if section else row)[key]:{style}}{unit}"
    if row.get("runs", 1) > 1:
        low, high = row["range"][f"{section}.{key}" if section else key]
        text += f" ({low:{style}}-{high:{style}})"
    return text


def markdown(results: dict) -> str:
    runs = results["plan"].get("runs", 1)
    lines = [
        "# Hostile neighbour",
        "",
        f"Commit {results['commit']}, {results['date']}, {results['machine']}; "
        f"{results['plan']['neighbours']} neighbours, a Heartbeat every ~{results['plan']['interval']} s each, "
        f"{results['plan']['quiet']} s quiet then {results['plan']['flood']} s of flood"
        + (f"; each cell the median of {runs} runs (range)." if runs > 1 else "."),
        "",
        "| server | neighbour p50 quiet | p99 quiet | p50 flood | p99 flood | p99 flood/quiet "
        "| flood frames sent | server RSS after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in results["runs"].items():
        lines.append(
            f"| {name} | {_cell(row, 'quiet', 'p50_ms', ' ms')} | {_cell(row, 'quiet', 'p99_ms', ' ms')} "
            f"| {_cell(row, 'flood', 'p50_ms', ' ms')} | {_cell(row, 'flood', 'p99_ms', ' ms')} "
            f"| {_cell(row, '', 'ratio_p99', 'x')} | {_cell(row, 'flooder', 'frames_sent')} "
            f"| {_cell(row, '', 'server_rss_mb', ' MB')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--out", type=Path, help="results directory")
    parser.add_argument("--neighbours", type=int)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--quiet", type=float)
    parser.add_argument("--flood", type=float)
    parser.add_argument("--with-limits-only", action="store_true")
    parser.add_argument("--runs", type=int, help="runs of each server (default 3; 1 with --quick)")
    args = parser.parse_args(argv)
    args.neighbours = args.neighbours or (5 if args.quick else 50)
    args.quiet = args.quiet or (2.0 if args.quick else 10.0)
    args.flood = args.flood or (3.0 if args.quick else 10.0)
    args.runs = args.runs or (1 if args.quick else 3)
    out = args.out or PROJECT_DIR / "bench" / "results" / ("tmp" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="levity-hostile-logs-"))
    servers: dict[str, tuple[str, dict[str, str]]] = {"with limits": ("limits", {})}
    if not args.with_limits_only:
        servers["without limits"] = ("no-limits", WITHOUT_LIMITS)
    each_run: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(args.runs):  # the servers take turns, so that a drift of the machine hits both
        for name, (label, env) in servers.items():
            each_run[name].append(run_one(label, env, args, log_dir))
    results = {
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "plan": {k: getattr(args, k) for k in ("neighbours", "interval", "quiet", "flood", "runs")},
        "runs": {name: median_run(rows) for name, rows in each_run.items()},
        "each_run": each_run,
    }
    (out / "hostile_neighbour.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "hostile_neighbour.md").write_text(markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
