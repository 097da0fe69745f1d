"""Shared parts of the reliability tests: real servers, real charge points, real faults.

Tests wait on conditions with the suite's one ``eventually`` (tests/conftest.py).
``Ledger`` is a raw OCPP charge point that remembers every CALL
it sent and the one answer each got, so a test can compare what the server
acknowledged with what the database holds.
``record`` writes a test's figures as JSON into ``LEVITY_RELIABILITY_RESULTS`` when
that variable names a directory (``python -m bench.reliability`` sets it and turns
the records into docs/reliability.md); otherwise it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

#: No answer within this many seconds counts as a hang.
ANSWER_TIMEOUT = 40.0


class Ledger:
    """A raw OCPP 1.6 charge point that logs each CALL and its answer.

    ``call`` sends one CALL and returns the answer frame; it raises ``AssertionError``
    if no answer comes within ``ANSWER_TIMEOUT`` (a hang) and ``ConnectionError``
    if the connection is lost before the answer.
    """

    _ids = itertools.count()

    def __init__(self, charge_point_id: str, url: str):
        self.charge_point_id = charge_point_id
        self.url = url
        self.ws: ClientConnection = None  # type: ignore[assignment]  # open() sets it before any use
        self.answers: dict[str, list] = {}  # message id -> answer frame
        self.sent: list[tuple[str, str, dict]] = []  # (message id, action, payload)
        self.commands: list[str] = []  # actions of the CS->CP calls received
        self.cut: set[str] = set()  # calls whose connection was lost before the answer

    async def open(self, url: str | None = None) -> Ledger:
        if url:
            self.url = url
        self.ws = await websockets.connect(self.url, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=30)
        return self

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def call(self, action: str, payload: dict, timeout: float = ANSWER_TIMEOUT) -> list:
        message_id = f"{self.charge_point_id}-{next(self._ids)}"
        self.sent.append((message_id, action, payload))
        try:
            await self.ws.send(json.dumps([2, message_id, action, payload]))
            while True:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
                if frame[0] == 2:  # a CS->CP call: a cooperative charger accepts it
                    self.commands.append(frame[2])
                    await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    continue
                assert frame[1] == message_id, f"answer to another call: {frame}"
                self.answers[message_id] = frame
                return frame
        except TimeoutError:
            raise AssertionError(f"{self.charge_point_id}: no answer to {action} in {timeout} s") from None
        except (websockets.ConnectionClosed, OSError) as exc:
            self.cut.add(message_id)
            raise ConnectionError(str(exc)) from exc

    async def answer_commands(self) -> None:
        """Answer the Central System's CALLs (Accepted) until cancelled, as an idle charger does."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                frame = json.loads(message)
                if frame[0] == 2:
                    self.commands.append(frame[2])
                    await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))

    def acknowledged(self, action: str) -> list[dict]:
        """The payloads of ``action`` the server answered with a CALLRESULT."""
        return [
            payload
            for message_id, name, payload in self.sent
            if name == action and self.answers.get(message_id, [None])[0] == 3
        ]

    def result(self, message_id: str):
        return self.answers[message_id]


def assert_proper_answer(frame: list, message_id_action: str = "") -> None:
    """A CALLRESULT, or a CALLERROR InternalError: never anything else."""
    assert frame[0] in (3, 4), frame
    if frame[0] == 4:
        assert frame[2] == "InternalError", f"{message_id_action}: {frame}"


def record_figures(name: str, **figures) -> None:
    """Write the figures of scenario ``name`` where ``LEVITY_RELIABILITY_RESULTS`` says."""
    directory = os.environ.get("LEVITY_RELIABILITY_RESULTS")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps({"scenario": name, **figures}, indent=1))


@pytest.fixture
def record():
    return record_figures


# --- a charging workload and what the database must hold afterwards ---------------

Reconnect = Callable[[Ledger], Awaitable[None]]


def now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Persistence:
    """Send one transaction message until it is acknowledged, as a charge point's queue does.

    A CALLERROR InternalError is retried after a pause; a lost connection is
    reconnected (``reconnect``) and the message sent again. The counts of both are kept.
    """

    def __init__(self, reconnect: Reconnect | None = None, deadline: float = 120):
        self.reconnect = reconnect
        self.deadline = deadline
        self.internal_errors = 0
        self.reconnects = 0

    async def send(self, ledger: Ledger, action: str, payload: dict) -> list:
        give_up = time.monotonic() + self.deadline
        while True:
            try:
                frame = await ledger.call(action, payload)
            except ConnectionError:
                if self.reconnect is None:
                    raise
                self.reconnects += 1
                await self.reconnect(ledger)
                continue
            assert_proper_answer(frame, action)
            if frame[0] == 3:
                return frame
            self.internal_errors += 1
            assert time.monotonic() < give_up, f"{action} never acknowledged: {frame}"
            await asyncio.sleep(0.2)


async def charge(
    ledger: Ledger,
    persistence: Persistence,
    sessions: int = 2,
    samples: int = 3,
    connector: int = 1,
    step_wh: int = 100,
    pause: float = 0.0,
) -> None:
    """Charging sessions: StartTransaction, ``samples`` MeterValues, StopTransaction each."""
    meter = 0
    for _ in range(sessions):
        started = await persistence.send(
            ledger,
            "StartTransaction",
            {"connectorId": connector, "idTag": "RELIABLE", "meterStart": meter, "timestamp": now_iso()},
        )
        transaction_id = started[2]["transactionId"]
        for _ in range(samples):
            meter += step_wh
            await persistence.send(
                ledger,
                "MeterValues",
                {
                    "connectorId": connector,
                    "transactionId": transaction_id,
                    "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": str(meter)}]}],
                },
            )
            if pause:
                await asyncio.sleep(pause)
        await persistence.send(
            ledger,
            "StopTransaction",
            {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso()},
        )


def orm_transactions(charge_point_id: str) -> dict[int, tuple[int, int | None, int | None]]:
    """transactionId -> (meterStart, meterStop, energy_wh) of a charge point, from the test database."""
    from transactions.models import Transaction

    return {
        t.pk: (t.meter_start, t.meter_stop, t.energy_wh)
        for t in Transaction.objects.filter(charge_point__charge_point_id=charge_point_id)
    }


def orm_meter_values(charge_point_id: str) -> list[tuple[int | None, str]]:
    """(transactionId, value) of a charge point's stored energy register readings."""
    from transactions.models import MeterValue

    return list(
        MeterValue.objects.filter(
            charge_point__charge_point_id=charge_point_id,
            measurand="Energy.Active.Import.Register",
        ).values_list("transaction_id", "value")
    )


def stored_against_acknowledged(
    ledgers: list[Ledger], transactions=orm_transactions, meter_values=orm_meter_values
) -> dict:
    """Compare what the server acknowledged with the rows it holds (sync: call in a thread).

    Returns the figures; the caller asserts ``lost == 0`` and the rest.
    """

    figures = {
        "charge_points": len(ledgers),
        "calls_sent": 0,
        "calls_answered": 0,
        "calls_cut_by_fault": 0,
        "acknowledged_transactions": 0,
        "stored_transactions": 0,
        "acknowledged_meter_values": 0,
        "stored_meter_values": 0,
        "acknowledged_wh": 0,
        "stored_wh": 0,
        "lost": 0,
        "duplicated": 0,
        "half_written": 0,
    }
    for ledger in ledgers:
        figures["calls_sent"] += len(ledger.sent)
        figures["calls_answered"] += len(ledger.answers)
        figures["calls_cut_by_fault"] += len(ledger.cut)
        acked_ids = {
            ledger.answers[message_id][2]["transactionId"]
            for message_id, action, _ in ledger.sent
            if action == "StartTransaction" and ledger.answers.get(message_id, [0])[0] == 3
        }
        stops = {p["transactionId"]: p["meterStop"] for p in ledger.acknowledged("StopTransaction")}
        rows = transactions(ledger.charge_point_id)
        figures["acknowledged_transactions"] += len(acked_ids)
        figures["stored_transactions"] += len(rows)
        figures["lost"] += len(acked_ids - rows.keys())
        # A transaction the charge point never got an id for is half-written.
        figures["half_written"] += len(rows.keys() - acked_ids)
        for transaction_id, meter_stop in stops.items():
            row = rows.get(transaction_id)
            if row is None or row[1] != meter_stop:
                figures["lost"] += 1
            else:
                figures["acknowledged_wh"] += meter_stop - row[0]
                figures["stored_wh"] += row[2] or 0
        acked_values = [
            (p["transactionId"], p["meterValue"][0]["sampledValue"][0]["value"])
            for p in ledger.acknowledged("MeterValues")
        ]
        stored_values = meter_values(ledger.charge_point_id)
        figures["acknowledged_meter_values"] += len(set(acked_values))
        figures["stored_meter_values"] += len(stored_values)
        figures["lost"] += len(set(acked_values) - set(stored_values))
        figures["duplicated"] += len(stored_values) - len(set(stored_values))
    return figures


def assert_nothing_lost(figures: dict) -> None:
    """Every call answered (or cut by the fault), nothing lost, half-written or stored twice.

    A message stored whose answer the fault cut, and that the charge point resent, is
    still stored once: its idempotency key (docs/operations.md) makes the resend a no-op.
    """
    assert figures["calls_answered"] + figures["calls_cut_by_fault"] == figures["calls_sent"], figures
    assert figures["lost"] == 0, figures
    assert figures["half_written"] == 0, figures
    assert figures["stored_wh"] == figures["acknowledged_wh"], figures
    assert figures["duplicated"] == 0, figures
