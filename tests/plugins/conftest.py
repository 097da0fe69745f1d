"""Fixtures for the plugin tests: daphne servers with plugins, a Fluentd receiver."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from tests.plugins.fluentd_receiver import FluentdReceiver


def plugins_env(*entries: dict) -> str:
    return json.dumps(list(entries))


def fluentd_plugins(port: int, **options) -> str:
    """LEVITY_PLUGINS with both Fluentd plugins sending to 127.0.0.1:port."""
    common = {"host": "127.0.0.1", "port": port}
    return plugins_env(
        {"class": "plugins.FluentdAuditPlugin", "options": {**common, **options}},
        {"class": "plugins.FluentdWebSocketAuditPlugin", "options": common},
    )


@pytest.fixture(scope="module")
def fluentd():
    receiver = FluentdReceiver().start()
    yield receiver
    receiver.stop()


async def round_trip_times(send, count: int) -> list[float]:
    """Seconds each of ``count`` awaited ``send()`` calls took, one after the other."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await send()
        times.append(time.perf_counter() - started)
    return times


async def round_trip_times_for(send, seconds: float) -> list[float]:
    """Like round_trip_times, for as many calls as fit in ``seconds``."""
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await send()
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> str:
    return (
        f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)}"
    )
