"""The soak: N simulated charge points charging for M minutes while faults strike at random.

    python -m bench.soak --charge-points 1000 --minutes 30     # the full soak
    python -m bench.soak --charge-points 50 --minutes 2        # a small one
    python -m bench.soak --quick                                # smoke (seconds; tests/bench)

Two daphne processes share a fresh SQLite database. Each charge point runs charging
sessions (StartTransaction, a MeterValues every few seconds, StopTransaction) and,
as a real charger's queue does, sends each transaction message again until it is
acknowledged: after a CALLERROR, or after reconnecting (to either process) when
its connection is lost. Every ``--fault-every`` seconds (on average) one fault
strikes: a process killed (SIGKILL) or stopped (SIGTERM) and started again, or the
database locked for 3 s. At the end the figures sent and acknowledged are compared
with the rows stored (messages, transactions, Wh), and the processes' memory over
time is reported. The JSON report goes to bench/results/soak.json and, when
LEVITY_RELIABILITY_RESULTS names a directory, to soak.json there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from bench.servers import PROJECT_DIR, Server, daphne_argv, free_port, git_commit, levity_env

RESULTS = PROJECT_DIR / "bench" / "results"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Farm:
    """The server processes, restartable on their ports."""

    def __init__(self, database: Path, log_dir: Path, processes: int = 2):
        self.env = levity_env(database, LEVITY_CALL_RATE="0")
        self.log_dir = log_dir
        self.servers = [self._server(free_port()) for _ in range(processes)]

    def _server(self, port: int) -> Server:
        return Server(
            "daphne",
            daphne_argv(port, "levity_site.asgi:application"),
            self.env,
            port,
            self.log_dir,
            cpu=None,
        )

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def urls(self) -> list[str]:
        return [s.ws_base for s in self.servers]

    def restart(self, index: int, how: str) -> None:
        victim = self.servers[index]
        if how == "SIGKILL":
            assert victim.process is not None  # started
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(30)
            victim.stop()
        else:
            victim.stop()
        self.servers[index] = self._server(victim.port)
        self.servers[index].start()

    def rss_mb(self) -> list[float]:
        return [round(s.rss() / 2**20, 1) for s in self.servers if s.alive()]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


class ChargePoint:
    """One simulated charge point: sends until acknowledged, reconnects, keeps its ledger."""

    ids = itertools.count()

    def __init__(self, charge_point_id: str, urls, stats: dict):
        self.id = charge_point_id
        self.urls = urls
        self.stats = stats
        self.ws: ClientConnection = None  # type: ignore[assignment]  # connect() sets it before any use
        self.acked_transactions: dict[int, tuple[int, int | None]] = {}  # id -> (start, stop)
        self.acked_values: set[tuple[int, str]] = set()

    async def connect(self) -> None:
        while True:
            url = random.choice(self.urls()) + self.id
            try:
                self.ws = await websockets.connect(
                    url, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=30
                )
                return
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.5 + random.random())

    async def send(self, action: str, payload: dict) -> dict:
        while True:
            message_id = f"{self.id}-{next(self.ids)}"
            self.stats["messages_sent"] += 1
            try:
                await self.ws.send(json.dumps([2, message_id, action, payload]))
                while True:
                    frame = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
                    if frame[0] == 2:
                        await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    elif frame[1] == message_id:
                        break
            except (websockets.ConnectionClosed, OSError, TimeoutError):
                self.stats["reconnects"] += 1
                with contextlib.suppress(Exception):
                    await self.ws.close()
                await self.connect()
                continue
            if frame[0] == 3:
                self.stats["messages_acknowledged"] += 1
                return frame[2]
            self.stats["callerrors"] += 1
            if frame[2] != "InternalError":
                self.stats["improper_errors"] += 1
            await asyncio.sleep(0.5)

    async def run(self, until: float, interval: float) -> None:
        await self.connect()
        meter = 0
        while time.monotonic() < until:
            start = {"connectorId": 1, "idTag": "SOAK", "meterStart": meter, "timestamp": now_iso()}
            transaction_id = (await self.send("StartTransaction", start))["transactionId"]
            self.acked_transactions[transaction_id] = (meter, None)
            for _ in range(random.randint(2, 6)):
                await asyncio.sleep(interval * (0.5 + random.random()))
                meter += random.randint(50, 500)
                value = {"connectorId": 1, "transactionId": transaction_id,
                         "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": str(meter)}]}]}  # fmt: skip
                await self.send("MeterValues", value)
                self.acked_values.add((transaction_id, str(meter)))
            stop = {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso()}
            await self.send("StopTransaction", stop)
            self.acked_transactions[transaction_id] = (self.acked_transactions[transaction_id][0], meter)
        with contextlib.suppress(Exception):
            await self.ws.close()


def lock_database(path: Path, seconds: float) -> None:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        db.execute("COMMIT")
    finally:
        db.close()


async def inject_faults(farm: Farm, database: Path, until: float, every: float, faults: list) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(random.expovariate(1 / every))
        if time.monotonic() > until - every / 2:
            return
        kind = random.choice(["SIGKILL", "SIGTERM", "database locked 3 s"])
        at = round(time.monotonic() - started, 1)
        if kind == "database locked 3 s":
            await asyncio.to_thread(lock_database, database, 3)
        else:
            await asyncio.to_thread(farm.restart, random.randrange(len(farm.servers)), kind)
        faults.append({"fault": kind, "after_seconds": at})


async def sample_memory(farm: Farm, until: float, samples: list) -> None:
    started = time.monotonic()
    while time.monotonic() < until:
        with contextlib.suppress(Exception):
            samples.append({"t": round(time.monotonic() - started), "rss_mb": farm.rss_mb()})
        await asyncio.sleep(5)


def stored(database: Path, charge_points: list[ChargePoint]) -> dict:
    db = sqlite3.connect(database, timeout=60)
    figures = {"transactions_stored": 0, "wh_stored": 0, "meter_values_stored": 0,
               "lost": 0, "duplicated": 0, "half_written": 0}  # fmt: skip
    for cp in charge_points:
        rows = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT t.id, t.meter_start, t.meter_stop, t.energy_wh FROM transactions_transaction t "
                "JOIN chargepoints_chargepoint c ON c.id = t.charge_point_id WHERE c.charge_point_id = ?",
                (cp.id,),
            )
        }
        figures["transactions_stored"] += len(rows)
        figures["half_written"] += len(rows.keys() - cp.acked_transactions.keys())
        for transaction_id, (_, stop) in cp.acked_transactions.items():
            row = rows.get(transaction_id)
            if row is None or (stop is not None and row[1] != stop):
                figures["lost"] += 1
            elif stop is not None:
                figures["wh_stored"] += row[2] or 0
        values = db.execute(
            "SELECT m.transaction_id, m.value FROM transactions_metervalue m JOIN chargepoints_chargepoint c "
            "ON c.id = m.charge_point_id WHERE c.charge_point_id = ? AND m.measurand = 'Energy.Active.Import.Register'",
            (cp.id,),
        ).fetchall()
        figures["meter_values_stored"] += len(values)
        figures["lost"] += len(cp.acked_values - set(values))
        figures["duplicated"] += len(values) - len(set(values))
    db.close()
    return figures


async def soak(count: int, minutes: float, fault_every: float, interval: float, workdir: Path) -> dict:
    database = workdir / "soak.sqlite3"
    env = levity_env(database)
    migrate = await asyncio.to_thread(
        subprocess.run, [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if migrate.returncode:
        raise SystemExit(f"migrate failed:\n{migrate.stderr}")
    farm = Farm(database, workdir)
    farm.start()
    stats = dict.fromkeys(
        ["messages_sent", "messages_acknowledged", "callerrors", "improper_errors", "reconnects"], 0
    )
    tag = f"SOAK{int(time.time()) % 10**6}"
    charge_points = [ChargePoint(f"{tag}-{n}", farm.urls, stats) for n in range(count)]
    started = time.monotonic()
    until = started + minutes * 60
    faults: list = []
    memory: list = []
    try:
        background = [
            asyncio.create_task(inject_faults(farm, database, until, fault_every, faults)),
            asyncio.create_task(sample_memory(farm, until + 30, memory)),
        ]
        await asyncio.gather(*(cp.run(until, interval) for cp in charge_points))
        for task in background:
            task.cancel()
    finally:
        farm.stop()
    figures = stored(database, charge_points)
    acked_wh = sum(stop - start for cp in charge_points
                   for start, stop in cp.acked_transactions.values() if stop is not None)  # fmt: skip
    first = [m for m in memory[:3] if m["rss_mb"]]
    last = [m for m in memory[-3:] if m["rss_mb"]]
    return {
        "scenario": "soak",
        "charge_points": count,
        "minutes": minutes,
        "seconds": round(time.monotonic() - started, 1),
        "faults": faults,
        **stats,
        "transactions_acknowledged": sum(len(cp.acked_transactions) for cp in charge_points),
        "meter_values_acknowledged": sum(len(cp.acked_values) for cp in charge_points),
        "wh_acknowledged": acked_wh,
        **figures,
        "rss_mb_first": first[0]["rss_mb"] if first else None,
        "rss_mb_last": last[-1]["rss_mb"] if last else None,
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charge-points", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--fault-every", type=float, default=60, help="mean seconds between faults")
    parser.add_argument("--interval", type=float, default=5, help="mean seconds between meter values")
    parser.add_argument(
        "--quick", action="store_true", help="smoke: 5 charge points, 20 s, a fault every 4 s"
    )
    args = parser.parse_args()
    if args.quick:
        args.charge_points, args.minutes, args.fault_every, args.interval = 5, 1 / 3, 4, 0.5
    with tempfile.TemporaryDirectory(prefix="levity-soak-") as workdir:
        report = asyncio.run(
            soak(args.charge_points, args.minutes, args.fault_every, args.interval, Path(workdir))
        )
    report = {"commit": git_commit(), **report}
    out = RESULTS / ("tmp" if args.quick else "") / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    if os.environ.get("LEVITY_RELIABILITY_RESULTS"):
        target = Path(os.environ["LEVITY_RELIABILITY_RESULTS"])
        target.mkdir(parents=True, exist_ok=True)
        (target / ("soak_smoke.json" if args.quick else "soak.json")).write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k not in ("memory", "faults")}
    print(json.dumps({**summary, "faults": len(report["faults"])}, indent=1))
    ok = report["lost"] == 0 and report["half_written"] == 0 and report["improper_errors"] == 0
    ok = ok and report["wh_stored"] == report["wh_acknowledged"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
