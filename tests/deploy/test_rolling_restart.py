"""A rolling restart behind nginx: nothing acknowledged is lost or stored twice.

Charge points send MeterValues through nginx to two Levity processes. Each process
in turn is stopped with SIGTERM (as systemd, Docker and Kubernetes stop it) and
started again; its charge points reconnect through nginx to the other one and
carry on. Afterwards every MeterValues the server acknowledged is in PostgreSQL
exactly once, nothing that was never sent is there, and a message that was in
flight when its connection closed (sent, never answered) is there at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

import pytest
import websockets

from tests.conftest import eventually
from tests.deploy.topology import rows

pytestmark = pytest.mark.once  # the deploy topology's own PostgreSQL, not the test database

CHARGE_POINTS = 6
#: Pause between one answer and the next MeterValues of a charge point.
PACE_SECONDS = 0.05


@dataclass
class ChargePointLedger:
    charge_point_id: str
    acknowledged: set[int] = field(default_factory=set)
    in_flight_at_close: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)
    errors: list = field(default_factory=list)
    connections: int = 0


class MeteringChargePoint:
    """A charge point sending one MeterValues (its own sequence number as the value) at a time."""

    def __init__(self, topology, charge_point_id: str):
        self.topology = topology
        self.ledger = ChargePointLedger(charge_point_id)
        self.stopping = asyncio.Event()
        self.sequence = 0

    async def connect(self):
        deadline = time.monotonic() + 60
        while True:
            try:
                ws = await websockets.connect(
                    self.topology.nginx.wss_url(self.ledger.charge_point_id),
                    ssl=self.topology.certificates.client_context(),
                    subprotocols=["ocpp1.6"],
                    open_timeout=10,
                )
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            self.ledger.connections += 1
            return ws

    async def call(self, ws, action: str, payload: dict) -> dict:
        message_id = uuid.uuid4().hex
        await ws.send(json.dumps([2, message_id, action, payload]))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if frame[0] == 2:  # a call from the server: not expected here
                await ws.send(json.dumps([4, frame[1], "NotSupported", "", {}]))
                continue
            assert frame[1] == message_id, frame
            if frame[0] == 4:
                raise RuntimeError(f"CALLERROR {frame[2:]}")
            return frame[2]

    async def run(self) -> None:
        while not self.stopping.is_set():
            ws = await self.connect()
            try:
                await self.call(
                    ws, "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}
                )
                while not self.stopping.is_set():
                    self.sequence += 1
                    seq = self.sequence
                    self.ledger.sent.add(seq)
                    try:
                        await self.call(ws, "MeterValues", meter_values(seq))
                    except RuntimeError as error:
                        self.ledger.errors.append((seq, str(error)))
                        continue
                    except BaseException:
                        self.ledger.in_flight_at_close.add(seq)
                        raise
                    self.ledger.acknowledged.add(seq)
                    await asyncio.sleep(PACE_SECONDS)
            except (websockets.ConnectionClosed, TimeoutError):
                continue  # reconnect through nginx
            finally:
                with contextlib.suppress(Exception):
                    await ws.close()


def meter_values(seq: int) -> dict:
    return {
        "connectorId": 1,
        "meterValue": [
            {
                # Each message its own time (the meter values' idempotency key): the
                # sequence number as the milliseconds.
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{seq % 1000:03d}Z",
                "sampledValue": [
                    {"value": str(seq), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ],
            }
        ],
    }


async def test_rolling_restart_loses_and_duplicates_no_acknowledged_meter_value(topology):
    prefix = f"ROLL-{uuid.uuid4().hex[:6]}"
    charge_points = [MeteringChargePoint(topology, f"{prefix}-{n}") for n in range(CHARGE_POINTS)]
    tasks = [asyncio.create_task(cp.run()) for cp in charge_points]

    def each_acknowledged_more_than(counts: list[int]):
        return lambda: all(
            len(cp.ledger.acknowledged) > n for cp, n in zip(charge_points, counts, strict=True)
        )

    try:
        await eventually(
            each_acknowledged_more_than([3] * CHARGE_POINTS), timeout=30, what="every charge point sending"
        )
        for server in topology.levity:
            connections = [cp.ledger.connections for cp in charge_points]
            await asyncio.to_thread(server.stop)  # SIGTERM, and wait for the process to exit
            counts = [len(cp.ledger.acknowledged) + 3 for cp in charge_points]
            await eventually(
                each_acknowledged_more_than(counts), timeout=60, what="every charge point sending again"
            )
            moved = [
                cp for cp, n in zip(charge_points, connections, strict=True) if cp.ledger.connections > n
            ]
            assert moved, f"no charge point was connected to the process on port {server.port}"
            await asyncio.to_thread(server.start, 60)
    finally:
        for cp in charge_points:
            cp.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    # Every charge point was on the second process when it was stopped, and some on the first.
    assert all(cp.ledger.connections >= 2 for cp in charge_points)
    assert sum(cp.ledger.connections for cp in charge_points) > 2 * CHARGE_POINTS
    stored = rows(
        topology.database_url,
        "SELECT cp.charge_point_id, mv.value::int, count(*) FROM transactions_metervalue mv "
        "JOIN chargepoints_chargepoint cp ON cp.id = mv.charge_point_id "
        "WHERE cp.charge_point_id LIKE %s GROUP BY 1, 2",
        f"{prefix}-%",
    )
    for cp in charge_points:
        ledger = cp.ledger
        counts = {value: count for cp_id, value, count in stored if cp_id == ledger.charge_point_id}
        assert not ledger.errors, ledger.errors
        assert ledger.acknowledged, ledger
        missing = ledger.acknowledged - counts.keys()
        assert not missing, f"{ledger.charge_point_id}: acknowledged, not stored: {sorted(missing)}"
        twice = {value: count for value, count in counts.items() if count > 1}
        assert not twice, f"{ledger.charge_point_id}: stored more than once: {twice}"
        never_sent = counts.keys() - ledger.sent
        assert not never_sent, never_sent
        unanswered_but_stored = (counts.keys() - ledger.acknowledged) - ledger.in_flight_at_close
        assert not unanswered_but_stored, unanswered_but_stored
