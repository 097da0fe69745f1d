"""What happens to OCPP answers and audit records when Fluentd is down, stalls or restarts."""

from __future__ import annotations

import re
import statistics

import pytest
from ocpp.v16 import call

from tests.conftest import eventually, free_port
from tests.plugins.conftest import (
    fluentd_plugins,
    plugins_env,
    round_trip_times,
    round_trip_times_for,
    summary,
)
from tests.plugins.fluentd_receiver import FluentdReceiver

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.once,  # the audit sender and its Fluentd connection: no row is asserted
]

#: A MeterValues of 60 sampled values: its audit record is about 4 kB.
BIG_METER_VALUE = [
    {
        "timestamp": "2026-01-01T00:00:00Z",
        "sampled_value": [
            {"value": f"{n}.5", "measurand": "Voltage", "unit": "V", "phase": "L1-N"} for n in range(60)
        ],
    }
]

#: Generous bound on any answer while Fluentd misbehaves (a sender that waited for
#: Fluentd would take its connect/send timeout, 1 s here, or more).
SLOW = 0.5
#: Lenient servers keep fields 1.6 does not define in the message, and so in its audit
#: record: a Heartbeat with this padding makes a 30 kB record at little cost.
PADDING = "x" * 30_000


def padded_heartbeats(session):
    counter = iter(range(10**9))

    async def send() -> None:
        frame = [2, f"hb-{next(counter)}", "Heartbeat", {"padding": PADDING}]
        answer = await session.exchange(frame)
        assert answer[0] == 3, answer  # a CALLRESULT: the message was audited

    return send


@pytest.fixture(scope="module")
def lenient_server(module_daphne):
    """A server that runs no plugins, for the latency to compare with."""
    return module_daphne(LEVITY_OCPP_LENIENT="true")


async def baseline(lenient_server, raw_ws, cp_id) -> list[float]:
    """Round trips of the same messages to a server that runs no plugins."""
    async with raw_ws(f"{cp_id}-base", server=lenient_server) as session:
        return await round_trip_times(padded_heartbeats(session), 100)


def assert_not_delayed(measured: list[float], no_plugins: list[float]) -> None:
    print(f"no plugins: {summary(no_plugins)}; with the plugins: {summary(measured)}")
    assert max(measured) < SLOW
    assert statistics.median(measured) < 3 * statistics.median(no_plugins) + 0.005


async def test_answers_keep_their_latency_while_fluentd_is_down(start_daphne, lenient_server, raw_ws, cp_id):
    no_plugins = await baseline(lenient_server, raw_ws, cp_id)
    server = start_daphne(
        LEVITY_OCPP_LENIENT="true", LEVITY_PLUGINS=fluentd_plugins(free_port(), timeout=1.0)
    )
    async with raw_ws(cp_id, server=server) as session:
        with_fluentd_down = await round_trip_times(padded_heartbeats(session), 100)

    assert_not_delayed(with_fluentd_down, no_plugins)
    assert "is unreachable ([Errno 111] Connection refused)" in server.log()


async def test_answers_keep_their_latency_while_fluentd_accepts_but_never_reads(
    start_daphne, lenient_server, raw_ws, cp_id
):
    no_plugins = await baseline(lenient_server, raw_ws, cp_id)
    stalled = FluentdReceiver(stall=True).start()
    try:
        server = start_daphne(
            LEVITY_OCPP_LENIENT="true", LEVITY_PLUGINS=fluentd_plugins(stalled.port, timeout=1.0)
        )
        async with raw_ws(cp_id, server=server) as session:
            # 2.5 s of 30 kB records: socket buffers (about 2 MB) fill within the first
            # 100, then the sender thread blocks in send() until its 1 s timeout.
            with_fluentd_stalled = await round_trip_times_for(padded_heartbeats(session), 2.5)
        assert stalled.connections_accepted >= 1 and not stalled.events
    finally:
        stalled.stop()

    assert_not_delayed(with_fluentd_stalled, no_plugins)
    assert "is unreachable (timed out)" in server.log()


async def test_records_kept_while_fluentd_is_away_arrive_once_it_is_back(connect, start_daphne, cp_id):
    receiver = FluentdReceiver()  # its port is chosen, nothing listens yet
    server = start_daphne(LEVITY_PLUGINS=fluentd_plugins(receiver.port))
    client = await connect(cp_id, server=server)
    await client.boot()
    await client.status(1, "Available")
    await client.call(call.Heartbeat())

    receiver.start()
    try:
        # No new record is needed: the sender retries what it kept.
        events = await receiver.wait_for(cp=cp_id, count=4)
        assert [e.tag for e in events] == ["ocpp.ws", "ocpp.boot", "ocpp.status", "ocpp.heartbeat"]
    finally:
        receiver.stop()
    assert "is reachable again" in server.log()


async def test_records_survive_a_fluentd_restart(connect, start_daphne, cp_id):
    receiver = FluentdReceiver().start()
    server = start_daphne(LEVITY_PLUGINS=fluentd_plugins(receiver.port))
    client = await connect(cp_id, server=server)
    await client.boot()
    await receiver.wait_for("ocpp.boot", cp_id)

    receiver.stop()
    await client.status(1, "Preparing")
    await client.status(1, "Charging")
    receiver.start()
    try:
        events = await receiver.wait_for("ocpp.status", cp_id, count=2)
        assert [e.record["msg"]["status"] for e in events] == ["Preparing", "Charging"]
    finally:
        receiver.stop()


async def test_records_beyond_the_buffer_are_dropped_counted_and_logged(connect, start_daphne, cp_id):
    receiver = FluentdReceiver()
    server = start_daphne(
        LEVITY_PLUGINS=plugins_env(
            {
                "class": "plugins.FluentdAuditPlugin",
                "options": {"host": "127.0.0.1", "port": receiver.port},
            },
            {"class": "plugins.PrometheusMetricsPlugin"},
        ),
        LEVITY_FLUENTD_QUEUE_SIZE="10",
        LEVITY_FLUENTD_BUFFER_BYTES="20000",
    )
    client = await connect(cp_id, server=server)
    await client.boot()
    for _ in range(30):  # 30 records of ~4 kB: most cannot be kept
        await client.call(call.MeterValues(connector_id=1, meter_value=BIG_METER_VALUE))

    receiver.start()
    try:
        await client.call(call.Heartbeat())
        await receiver.wait_for("ocpp.heartbeat", cp_id)
        delivered = len(receiver.matching(cp=cp_id))
    finally:
        receiver.stop()
    destination = f'destination="127.0.0.1:{receiver.port}"'
    metrics = await _get(server.http_url + "/metrics")
    [counted] = re.findall(rf"levity_fluentd_records_dropped_total{{{destination}}} (\S+)", metrics)
    # 32 records sent (boot, 30 meter values, heartbeat): each delivered or dropped.
    assert 0 < int(float(counted)) == 32 - delivered
    # The log says it too (at once for the first drop, then at most every 10 s or
    # once the sender is idle).
    await wait_for_log(server, rf"\({32 - delivered} dropped in total\)")


async def test_records_still_buffered_at_exit_are_counted_as_dropped(connect, start_daphne, cp_id):
    server = start_daphne(LEVITY_PLUGINS=fluentd_plugins(free_port()))
    client = await connect(cp_id, server=server)
    await client.boot()
    await client.call(call.Heartbeat())
    await client.close()
    await wait_for_log(server, rf"{cp_id} disconnected")

    server.stop()  # SIGTERM, as a service manager stops it

    # connect, boot, heartbeat, disconnect
    assert re.search(r"dropped 4 audit records because Fluentd is away at exit", server.log()), server.log()[
        -2000:
    ]


async def wait_for_log(server, pattern: str, timeout: float = 10) -> None:
    def logged() -> bool:
        assert re.search(pattern, server.log()), f"{pattern!r} not logged:\n{server.log()[-2000:]}"
        return True

    await eventually(logged, timeout=timeout)


async def _get(url: str) -> str:
    import httpx

    from tests.conftest import METRICS_TOKEN

    async with httpx.AsyncClient() as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        response.raise_for_status()
        return response.text
