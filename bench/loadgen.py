"""Load generator worker: one process driving a slice of simulated charge points.

Each simulated charge point is a real WebSocket client (the `websockets` package,
subprotocol ocpp1.6, no compression) in a closed loop: it sends its next CALL when
the answer to the previous one has arrived. The runner (bench/run.py) starts one
or more of these processes and talks to each over stdin/stdout, one line each:

    worker -> {"event": "ready", ...}      connected and set up (not measured)
    runner -> go <t0>                       t0 on the shared monotonic clock
    worker -> {"event": "result", ...}      after warm-up + measured window + drain
    runner -> close                         (idle scenario) close everything, exit

Scenarios: heartbeat, meter_values, session, idle (connect + Boot, then hold),
storm (at t0 every charge point connects and sends Boot + Status at once).
The worker reports its own CPU time over the measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

if __package__ in (None, ""):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench import frames

SUBPROTOCOL = Subprotocol("ocpp1.6")
METER_VALUES_PER_SESSION = 3


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class CallFailed(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


@dataclass
class Stats:
    """What a worker measured; merged by the runner."""

    completed: int = 0  # answers received inside the measured window
    latencies_ms: list[float] = field(default_factory=list)
    # The same latencies by action, for the session script's breakdown.
    by_action: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # Nothing-lost ledger: transaction id -> [acked MeterValues messages, acked stop meter or None]
    transactions: dict[int, list] = field(default_factory=dict)
    # Meter values acked outside a transaction (none in these scenarios, kept for honesty).
    sent_total: int = 0
    acked_total: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Window:
    """The measured window [start, end) on the loop clock (= time.monotonic())."""

    def __init__(self, start: float, end: float):
        self.start = start
        self.end = end
        self.cpu_start: float | None = None
        self.cpu_end: float | None = None

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        # call_later, not call_at: uvloop's clock is not time.monotonic() itself.
        now = time.monotonic()
        loop.call_later(max(0.0, self.start - now), self._mark_start)
        loop.call_later(max(0.0, self.end - now), self._mark_end)

    def _mark_start(self) -> None:
        self.cpu_start = time.process_time()

    def _mark_end(self) -> None:
        self.cpu_end = time.process_time()


class SimulatedChargePoint:
    def __init__(self, index: int, cp_id: str, config: dict, stats: Stats):
        self.index = index
        self.cp_id = cp_id
        self.config = config
        self.stats = stats
        self.ws: Any = None
        self.seq = 0
        self.tag = frames.id_tag(index)
        self.energy = 0
        self.alive = False
        self.tx_id = 0  # the open transaction of the meter_values scenario (setup())

    async def open(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.config.get("source_address"):
            kwargs["local_addr"] = (self.config["source_address"], 0)
        self.ws = await connect(
            self.config["url"] + self.cp_id,
            subprotocols=[SUBPROTOCOL],
            compression=None,
            ping_interval=None,
            proxy=None,
            open_timeout=self.config.get("open_timeout", 30),
            close_timeout=2,
            max_queue=64,
            user_agent_header=None,
            **kwargs,
        )
        self.alive = True

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        self.alive = False

    def next_id(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def request(self, uid: str, action: str, frame: str, window: Window | None = None) -> dict:
        """Send one CALL, wait for its answer; count it when it lands in the window."""
        ws = self.ws
        started = time.perf_counter()
        self.stats.sent_total += 1
        try:
            async with asyncio.timeout(self.config["timeout"]):
                await ws.send(frame)
                while True:
                    reply = orjson.loads(await ws.recv())
                    if reply[0] == 2:  # a CS->CP call: answer it like a cooperative charger
                        await ws.send(orjson.dumps([3, reply[1], {"status": "Accepted"}]).decode())
                        continue
                    if reply[1] != uid:
                        raise CallFailed("wrong_message_id")
                    break
        except TimeoutError:
            self.alive = False
            raise CallFailed("timeout") from None
        except websockets.ConnectionClosed:
            self.alive = False
            raise CallFailed("connection_closed") from None
        finished = time.perf_counter()
        self.stats.acked_total += 1
        if window is not None:
            now = time.monotonic()
            if window.start <= now < window.end:
                self.stats.completed += 1
                latency = round((finished - started) * 1000, 3)
                self.stats.latencies_ms.append(latency)
                self.stats.by_action.setdefault(action, []).append(latency)
        if reply[0] == 4:
            raise CallFailed(f"callerror:{reply[2]}")
        return reply[2]

    # --- scenario steps --------------------------------------------------------

    async def boot(self, window: Window | None = None) -> None:
        uid = self.next_id()
        await self.request(uid, "BootNotification", frames.boot_notification(uid), window)

    async def start_transaction(self, window: Window | None = None) -> int:
        uid = self.next_id()
        frame = frames.start_transaction(uid, self.tag, self.energy)
        answer = await self.request(uid, "StartTransaction", frame, window)
        tx_id = int(answer["transactionId"])
        self.stats.transactions[tx_id] = [0, None]
        return tx_id

    async def meter_values(self, tx_id: int, window: Window | None = None) -> None:
        uid = self.next_id()
        self.energy += 10
        await self.request(uid, "MeterValues", frames.meter_values(uid, tx_id, self.energy), window)
        self.stats.transactions[tx_id][0] += 1

    async def stop_transaction(self, tx_id: int, window: Window | None = None) -> None:
        uid = self.next_id()
        frame = frames.stop_transaction(uid, tx_id, self.tag, self.energy)
        await self.request(uid, "StopTransaction", frame, window)
        self.stats.transactions[tx_id][1] = self.energy

    async def status(self, status: str, window: Window | None = None, connector_id: int = 1) -> None:
        uid = self.next_id()
        await self.request(
            uid, "StatusNotification", frames.status_notification(uid, connector_id, status), window
        )

    async def authorize(self, window: Window | None = None) -> None:
        uid = self.next_id()
        await self.request(uid, "Authorize", frames.authorize(uid, self.tag), window)

    async def heartbeat(self, window: Window | None = None) -> None:
        uid = self.next_id()
        await self.request(uid, "Heartbeat", frames.heartbeat(uid), window)


# --- scenarios ---------------------------------------------------------------------


async def guarded(stats: Stats, step) -> bool:
    """Run one step; a CALLERROR is counted and the charge point goes on."""
    try:
        await step
        return True
    except CallFailed as exc:
        stats.error(exc.kind)
        return False


async def setup(cp: SimulatedChargePoint, scenario: str) -> None:
    await cp.open()
    if scenario in ("heartbeat", "meter_values", "idle"):
        await cp.boot()
    if scenario == "meter_values":
        cp.tx_id = await cp.start_transaction()


async def run_loop(cp: SimulatedChargePoint, scenario: str, window: Window, t0: float) -> None:
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    stats = cp.stats
    while cp.alive and time.monotonic() < window.end:
        if scenario == "heartbeat":
            await guarded(stats, cp.heartbeat(window))
        elif scenario == "meter_values":
            await guarded(stats, cp.meter_values(cp.tx_id, window))
        elif scenario == "session":
            await run_session_script(cp, window)
        else:
            raise ValueError(scenario)


async def run_session_script(cp: SimulatedChargePoint, window: Window) -> None:
    """Boot, Status, Authorize, Start, Status, MeterValues x3, Stop, Status: one charge."""
    stats = cp.stats
    if not await guarded(stats, cp.boot(window)):
        return
    if not await guarded(stats, cp.status("Preparing", window)):
        return
    if not await guarded(stats, cp.authorize(window)):
        return
    try:
        tx_id = await cp.start_transaction(window)
    except CallFailed as exc:
        stats.error(exc.kind)
        return
    if not await guarded(stats, cp.status("Charging", window)):
        return
    for _ in range(METER_VALUES_PER_SESSION):
        if not await guarded(stats, cp.meter_values(tx_id, window)):
            return
    if not await guarded(stats, cp.status("Finishing", window)):
        return
    if not await guarded(stats, cp.stop_transaction(tx_id, window)):
        return
    await guarded(stats, cp.status("Available", window))


async def storm_one(cp: SimulatedChargePoint, t0: float, out: list) -> None:
    """Connect, Boot, Status at t0; record the time until both are answered."""
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    begin = time.perf_counter()
    try:
        await cp.open()
    except Exception as exc:  # refused, handshake failure, timeout: all count
        cp.stats.error(f"connect:{type(exc).__name__}")
        return
    connected = time.perf_counter()
    window = Window(0, float("inf"))
    try:
        await cp.boot(window)
        await cp.status("Available", window, connector_id=0)
    except CallFailed as exc:
        cp.stats.error(exc.kind)
        return
    out.append((round((time.perf_counter() - begin) * 1000, 3), round((connected - begin) * 1000, 3)))


# --- the worker process ----------------------------------------------------------------


class Control:
    """Lines from the runner on stdin, read by a thread, handed to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.loop = loop
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line.strip())
        self.loop.call_soon_threadsafe(self.queue.put_nowait, "eof")

    async def expect(self, word: str) -> str:
        while True:
            line = await self.queue.get()
            if line == "eof":
                raise SystemExit(f"runner went away while waiting for {word!r}")
            if line.split(" ", 1)[0] == word:
                return line


def emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


async def bounded_gather(coros, limit: int) -> list:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


async def main(config: dict) -> None:
    raise_fd_limit()
    if config.get("cpu") is not None:
        os.sched_setaffinity(0, {config["cpu"]})
    loop = asyncio.get_running_loop()
    control = Control(loop)
    stats = Stats()
    scenario = config["scenario"]
    cps = [
        SimulatedChargePoint(index, cp_id, config, stats)
        for index, cp_id in zip(config["indices"], config["cp_ids"], strict=True)
    ]

    if scenario == "storm":
        emit("ready", connected=0)
        t0 = float((await control.expect("go")).split()[1])
        results: list = []
        cpu_start = time.process_time()
        await asyncio.gather(*(storm_one(cp, t0, results) for cp in cps))
        emit(
            "result",
            cpu_seconds=time.process_time() - cpu_start,
            storm=[r[0] for r in results],
            connect_ms=[r[1] for r in results],
            latencies_ms=stats.latencies_ms,
            errors=stats.errors,
            answered=len(results),
        )
        # Hold the connections until every worker has its answers: closing them now
        # would load the server while another worker still waits for its last ones.
        await control.expect("release")
        await bounded_gather([cp.close() for cp in cps], 200)
        return

    outcomes = await bounded_gather(
        [setup(cp, scenario) for cp in cps], config.get("connect_concurrency", 100)
    )
    for cp, outcome in zip(cps, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            kind = outcome.kind if isinstance(outcome, CallFailed) else type(outcome).__name__
            stats.error(f"setup:{kind}")
            cp.alive = False
    live = [cp for cp in cps if cp.alive]
    emit("ready", connected=len(live), errors=stats.errors)

    if scenario == "idle":
        await control.expect("close")
        await bounded_gather([cp.close() for cp in cps], 500)
        emit("result", connected=len(live), errors=stats.errors)
        return

    t0 = float((await control.expect("go")).split()[1])
    window = Window(t0 + config["warmup"], t0 + config["warmup"] + config["duration"])
    window.arm(loop)
    await asyncio.gather(*(run_loop(cp, scenario, window, t0) for cp in live), return_exceptions=True)
    ended_at = time.monotonic()
    cpu = None
    if window.cpu_start is not None and window.cpu_end is not None:
        cpu = window.cpu_end - window.cpu_start
    emit(
        "result",
        completed=stats.completed,
        latencies_ms=stats.latencies_ms,
        by_action=stats.by_action,
        errors=stats.errors,
        transactions={str(k): v for k, v in stats.transactions.items()},
        sent_total=stats.sent_total,
        acked_total=stats.acked_total,
        cpu_seconds=cpu,
        drain_seconds=round(ended_at - window.end, 3),
        connected=len(live),
    )
    await bounded_gather([cp.close() for cp in cps], 200)


def run() -> None:
    config = json.loads(sys.argv[1])
    try:
        import uvloop  # the load generator's own loop: less client CPU per message
    except ImportError:  # pragma: no cover - uvloop is in requirements-dev.txt
        asyncio.run(main(config))
    else:
        uvloop.run(main(config))


if __name__ == "__main__":
    run()
