"""Property-based fuzzing of a live server with hypothesis: frames, payloads, orders.

Each example opens sessions for several fresh charge points on one real daphne and
sends them a random sequence of steps: payloads generated from the OCPP 1.6 JSON
schemas (valid), the same with a boundary value or a mutation (a required field
dropped, a value of the wrong type), charging steps whose transactionId is the one
the server gave (so that stops, meter values and statuses meet real rows, in random
order and with random timestamps), and frames that are not OCPP at all.

After every step a sentinel Heartbeat proves the session alive and collects what the
server sent back. Checked after every example: every CALL got exactly one answer, a
CALLRESULT or a CALLERROR; the server still runs and its memory stays bounded; the
database is consistent (no transaction without its charge point, no stop before its
start unless flagged ``stop_before_start``, no transaction id given for two different starts, no negative energy without
its flag, each connector's state the latest status by timestamp).

``LEVITY_FUZZ_EXAMPLES`` sets the number of examples (CI: a few dozen; the long run
in docs/reliability.md sets thousands).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import ocpp.v16
import psutil
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from websockets.typing import Subprotocol

from tests.conftest import DaphneServer, server_env
from tests.reliability.conftest import record_figures

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("LEVITY_FUZZ_EXAMPLES", "25"))
#: Growth of the server's resident memory over the whole run that counts as unbounded.
MEMORY_BOUND_MB = 150

SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"
ACTIONS = [
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
    "StatusNotification", "StopTransaction", "SecurityEventNotification",
    "SignedFirmwareStatusNotification", "LogStatusNotification",
]  # fmt: skip


def schema(action: str) -> dict:
    loaded = json.loads((SCHEMAS / f"{action}.json").read_text())
    loaded.pop("$schema", None)
    loaded.pop("id", None)
    return loaded


def from_schema(node: dict) -> st.SearchStrategy:
    """Payloads valid against an OCPP 1.6 JSON schema (objects, arrays, enums, strings, numbers).

    Written here because the schemas use little of JSON Schema, and hypothesis-jsonschema
    does not follow this hypothesis's internals.
    """
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        return st.lists(from_schema(node.get("items", {})), min_size=node.get("minItems", 0), max_size=3)
    if kind == "integer":
        return st.integers(min_value=node.get("minimum", -(2**31)), max_value=node.get("maximum", 2**31 - 1))
    if kind == "number":
        return st.floats(
            min_value=node.get("minimum", -1e9), max_value=node.get("maximum", 1e9), allow_nan=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if node.get("format") == "date-time":
            return timestamps()
        return st.text(max_size=node.get("maxLength", 50))
    return st.none()


#: Values at the edges of what 1.6 allows, and just beyond.
BOUNDARY: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, -(2**31), 2**63, 1.5, "", "x" * 21, "x" * 501, None, [], {},
     "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "not a date", "2026-02-30T00:00:00Z"]
)  # fmt: skip


@st.composite
def mutated(draw, action: str) -> dict:
    """A valid payload with one field dropped, or one value replaced by a boundary value."""
    payload = draw(from_schema(schema(action)))
    keys = sorted(payload)
    if not keys:
        return {"unexpected": draw(BOUNDARY)}
    key = draw(st.sampled_from(keys))
    if draw(st.booleans()):
        del payload[key]
    else:
        payload[key] = draw(BOUNDARY)
    return payload


def timestamps():
    return st.datetimes(
        min_value=__import__("datetime").datetime(2000, 1, 1),
        max_value=__import__("datetime").datetime(2040, 1, 1),
    ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")


def charging_step():
    """A step of a charging session; "$tx" is replaced by the charge point's last transactionId."""
    connector = st.integers(min_value=1, max_value=2)
    return st.one_of(
        st.builds(
            lambda c, tag, m, ts: ("StartTransaction", {"connectorId": c, "idTag": tag, "meterStart": m, "timestamp": ts}),
            connector, st.sampled_from(["FUZZ", "OTHER"]), st.integers(0, 2**31 - 1), timestamps(),
        ),
        st.builds(
            lambda m, ts: ("StopTransaction", {"transactionId": "$tx", "meterStop": m, "timestamp": ts}),
            st.integers(0, 2**31 - 1), timestamps(),
        ),
        st.builds(
            lambda c, v, ts: ("MeterValues", {"connectorId": c, "transactionId": "$tx",
                                              "meterValue": [{"timestamp": ts, "sampledValue": [{"value": v}]}]}),
            connector, st.integers(0, 2**31 - 1).map(str), timestamps(),
        ),
        st.builds(
            lambda c, s, ts: ("StatusNotification", {"connectorId": c, "errorCode": "NoError", "status": s, "timestamp": ts}),
            st.integers(0, 2), st.sampled_from(["Available", "Preparing", "Charging", "Finishing", "Faulted"]), timestamps(),
        ),
    )  # fmt: skip


def garbage():
    """Frames that are not OCPP CALLs: not JSON, not arrays, unknown types, CALLRESULTs for nobody."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=10,
    )
    return st.one_of(
        st.text(max_size=200).map(lambda t: ("raw", t)),
        json_values.map(lambda v: ("raw", json.dumps(v))),
        st.tuples(st.sampled_from([3, 4, 5, 2]), st.text(max_size=40), json_values).map(
            lambda t: ("raw", json.dumps(list(t)))
        ),
    )


def step():
    action = st.sampled_from(ACTIONS)
    return st.one_of(
        action.flatmap(lambda a: from_schema(schema(a)).map(lambda p: (a, p))),
        action.flatmap(lambda a: mutated(a).map(lambda p: (a, p))),
        charging_step(),
        charging_step(),
        garbage(),
        st.text(min_size=1, max_size=30).map(lambda a: (a, {})),  # unknown actions
    )


#: A StopTransaction timestamped before its start is stored as reported, acknowledged
#: and flagged (``Transaction.stop_before_start``); a row stored so without its flag
#: violates the invariant. The fuzzer counts the flagged rows (docs/reliability.md).
STOP_BEFORE_START = "stop before start without its flag"

PLAN = st.lists(st.tuples(st.integers(0, 2), step()), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def fuzz_server(django_db_setup, django_db_blocker, test_db_path, tmp_path_factory):
    server = DaphneServer(server_env(test_db_path), tmp_path_factory.mktemp("fuzz") / "daphne.log").start()
    yield server
    server.stop()


class Totals:
    def __init__(self) -> None:
        self.examples = self.calls = self.callresults = self.callerrors = self.garbage = 0
        self.stops_before_start_flagged = 0


async def run_plan(server: DaphneServer, plan: list, totals: Totals) -> list[str]:
    """Play ``plan`` over three fresh charge points; returns their ids."""
    ids = [f"FZ{uuid.uuid4().hex[:12]}" for _ in range(3)]
    sockets = [await websockets.connect(server.ws_url(i), subprotocols=[Subprotocol("ocpp1.6")]) for i in ids]
    last_tx: dict[int, int] = {}
    starts: dict[int, set] = {}
    try:
        for who, (action, payload) in plan:
            ws = sockets[who]
            if action == "raw":
                await ws.send(payload)
                message_id = None
                totals.garbage += 1
            else:
                payload = copy.deepcopy(payload)
                if payload.get("transactionId") == "$tx":
                    payload["transactionId"] = last_tx.get(who, 1)
                message_id = uuid.uuid4().hex[:20]
                await ws.send(json.dumps([2, message_id, action, payload]))
                totals.calls += 1
            sentinel = f"sentinel-{uuid.uuid4().hex[:12]}"
            await ws.send(json.dumps([2, sentinel, "Heartbeat", {}]))
            received = []
            while True:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                except TimeoutError:
                    raise AssertionError(f"no answer to the sentinel after {action}") from None
                if isinstance(frame, list) and len(frame) > 1 and frame[1] == sentinel:
                    assert frame[0] == 3, frame
                    break
                received.append(frame)
            if message_id is None:
                for frame in received:  # an answer to garbage can only be a CALLERROR
                    assert frame[0] == 4, frame
                continue
            answers = [f for f in received if f[1] == message_id]
            assert len(answers) == 1, f"{action} {payload}: answers {received}"
            answer = answers[0]
            assert answer[0] in (3, 4), answer
            if answer[0] == 3:
                totals.callresults += 1
                if action == "StartTransaction":
                    transaction_id = answer[2]["transactionId"]
                    last_tx[who] = transaction_id
                    key = tuple(payload[k] for k in ("connectorId", "idTag", "meterStart", "timestamp"))
                    starts.setdefault(transaction_id, set()).add(key)
                    assert len(starts[transaction_id]) == 1, f"transactionId {transaction_id} given twice"
            else:
                totals.callerrors += 1
                assert answer[2] != "InternalError" or action not in ("Heartbeat",), answer
    finally:
        for ws in sockets:
            await ws.close()
    return ids


def check_database(ids: list[str]) -> list[str]:
    """The consistency invariants; returns what is violated."""
    from django.db.models import F

    from chargepoints.models import ChargePoint, Connector, StatusNotification
    from transactions.models import Transaction

    problems = []
    orphans = Transaction.objects.exclude(charge_point_id__in=ChargePoint.objects.values("pk"))
    if orphans.exists():
        problems.append(f"transactions without a charge point: {list(orphans.values_list('pk', flat=True))}")
    mine = Transaction.objects.filter(charge_point__charge_point_id__in=ids)
    early = mine.filter(stop_timestamp__lt=F("start_timestamp"), stop_before_start=False)
    if early.exists():
        problems.append(
            f"{STOP_BEFORE_START}: {list(early.values('pk', 'start_timestamp', 'stop_timestamp'))}"
        )
    negative = mine.filter(energy_wh__lt=0, meter_stop_below_start=False)
    if negative.exists():
        problems.append(f"negative energy without the flag: {list(negative.values('pk', 'energy_wh'))}")
    for connector in Connector.objects.filter(charge_point__charge_point_id__in=ids):
        history = StatusNotification.objects.filter(
            charge_point=connector.charge_point_id, connector_id=connector.connector_id
        ).order_by("-timestamp", "-received_at")
        latest = list(history[:2])
        if not latest or (len(latest) == 2 and latest[0].timestamp == latest[1].timestamp):
            continue  # no history, or a tie: no single latest status
        if connector.status != latest[0].status:
            problems.append(
                f"{connector}: state {connector.status}, latest status by timestamp {latest[0].status}"
            )
    return problems


def stops_before_start_flagged(ids: list[str]) -> int:
    from transactions.models import Transaction

    return Transaction.objects.filter(charge_point__charge_point_id__in=ids, stop_before_start=True).count()


def test_live_server_answers_every_call_once_and_keeps_the_database_consistent(fuzz_server):
    process = psutil.Process(fuzz_server.process.pid)
    rss_start = process.memory_info().rss
    totals = Totals()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        # Each example is seconds of real traffic: report the failure as found.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(plan=PLAN)
    def example(plan):
        ids = asyncio.run(run_plan(fuzz_server, plan, totals))
        totals.examples += 1
        assert fuzz_server.alive(), "the server died"
        problems = check_database(ids)
        assert not problems, problems
        totals.stops_before_start_flagged += stops_before_start_flagged(ids)

    example()
    rss_end = process.memory_info().rss
    growth_mb = (rss_end - rss_start) / 2**20
    record_figures(
        "fuzz_ocpp",
        inputs=f"{totals.examples} examples: schema-valid, boundary and mutated payloads, "
        "charging sequences in random order, non-OCPP frames, over 3 charge points each",
        examples=totals.examples,
        calls_sent=totals.calls,
        calls_answered=totals.callresults + totals.callerrors,
        callresults=totals.callresults,
        callerrors=totals.callerrors,
        garbage_frames=totals.garbage,
        stops_before_start_flagged=totals.stops_before_start_flagged,
        rss_start_mb=round(rss_start / 2**20, 1),
        rss_end_mb=round(rss_end / 2**20, 1),
        seconds=round(time.monotonic() - started, 1),
        lost=0,
    )
    assert fuzz_server.alive()
    assert growth_mb < MEMORY_BOUND_MB, f"server memory grew by {growth_mb:.0f} MB"


def test_a_stop_timestamped_before_its_start_is_stored_as_reported_and_flagged(fuzz_server):
    from datetime import UTC, datetime

    from transactions.models import Transaction

    plan = [
        (
            0,
            (
                "StartTransaction",
                {"connectorId": 1, "idTag": "FUZZ", "meterStart": 0, "timestamp": "2027-03-27T15:31:24Z"},
            ),
        ),
        (
            0,
            (
                "StopTransaction",
                {"transactionId": "$tx", "meterStop": 10, "timestamp": "2015-10-01T08:15:55Z"},
            ),
        ),
    ]  # fmt: skip (found by the fuzzer)
    totals = Totals()
    ids = asyncio.run(run_plan(fuzz_server, plan, totals))
    assert totals.callresults == 2  # acknowledged: the charge point does not resend it for ever
    [tx] = Transaction.objects.filter(charge_point__charge_point_id=ids[0])
    assert tx.stop_before_start
    assert tx.meter_stop == 10 and tx.energy_wh == 10  # its billing data kept
    assert tx.stop_timestamp == datetime(2015, 10, 1, 8, 15, 55, tzinfo=UTC)  # as reported
    assert tx.start_timestamp == datetime(2027, 3, 27, 15, 31, 24, tzinfo=UTC)
    assert not check_database(ids)
