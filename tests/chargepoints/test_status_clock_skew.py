"""StatusNotification timestamps against the server's clock, over a real daphne server.

Rule (docs/operations.md): a timestamp further ahead of the server's clock than
LEVITY_CLOCK_SKEW_TOLERANCE is stored as reported but ordered by the receive time,
and logged; otherwise the charge point's timestamps order the connector's state.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chargepoints.models import Connector, StatusNotification

pytestmark = pytest.mark.django_db(transaction=True)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def from_now(**delta) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(**delta))


def status(unique_id: str, status: str, timestamp: str | None) -> list:
    payload = {"connectorId": 1, "errorCode": "NoError", "status": status}
    if timestamp is not None:
        payload["timestamp"] = timestamp
    return [2, unique_id, "StatusNotification", payload]


async def connector_status(cp_id: str) -> str:
    return (await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=1)).status


async def test_a_status_dated_9999_does_not_pin_the_connector(raw_ws, cp_id, daphne_server):
    async with raw_ws(cp_id) as session:
        assert (await session.exchange(status("s1", "Faulted", "9999-12-31T23:59:59Z")))[0] == 3
        # Later than the first one's receive time, the time it is ordered by.
        assert (await session.exchange(status("s2", "Available", from_now(seconds=2))))[0] == 3
    assert await connector_status(cp_id) == "Available"
    # Stored as reported.
    history = [
        s.timestamp
        async for s in StatusNotification.objects.filter(
            charge_point__charge_point_id=cp_id, status="Faulted"
        )
    ]
    assert history == [datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)]
    await daphne_server.wait_for_log("ahead of the server's clock")


async def test_a_status_slightly_ahead_of_the_server_still_orders_by_its_timestamp(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        await session.exchange(status("s1", "Charging", from_now(seconds=60)))
        await session.exchange(status("s2", "Available", from_now(seconds=-60)))  # older: history only
    assert await connector_status(cp_id) == "Charging"


async def test_the_tolerance_is_configurable(start_daphne, raw_ws, cp_id):
    server = start_daphne(LEVITY_CLOCK_SKEW_TOLERANCE="10")
    async with raw_ws(cp_id, server=server) as session:
        await session.exchange(status("s1", "Charging", from_now(seconds=60)))
        await session.exchange(status("s2", "Available", from_now(seconds=2)))
    # A minute ahead is beyond 10 s: ordered by its receive time, so Available is later
    # (with the default 300 s it is not: the test above).
    assert await connector_status(cp_id) == "Available"


async def test_a_resent_status_notification_is_stored_once(raw_ws, cp_id):
    at = from_now(seconds=-30)
    async with raw_ws(cp_id) as session:
        answers = [await session.exchange(status("s1", "Preparing", at))]
        # Its answer was lost: resent with a new id, then the same one.
        answers.append(await session.exchange(status("s1-again", "Preparing", at)))
        answers.append(await session.exchange(status("s1", "Preparing", at)))
    assert answers == [[3, "s1", {}], [3, "s1-again", {}], [3, "s1", {}]]
    rows = StatusNotification.objects.filter(charge_point__charge_point_id=cp_id)
    assert await rows.acount() == 1
    assert await connector_status(cp_id) == "Preparing"


async def test_offline_queued_statuses_replayed_late_and_interleaved_end_at_the_latest(raw_ws, cp_id):
    """Hours-old queued notifications arrive after a live one, out of order."""
    async with raw_ws(cp_id) as session:
        await session.exchange(status("live", "Available", from_now(seconds=-1)))
        for unique_id, state, hours in [
            ("q2", "Charging", -2),
            ("q1", "Preparing", -3),
            ("q3", "Finishing", -1),
        ]:
            await session.exchange(status(unique_id, state, from_now(hours=hours)))
    assert await connector_status(cp_id) == "Available"
    history = [
        s.status
        async for s in StatusNotification.objects.filter(charge_point__charge_point_id=cp_id).order_by(
            "timestamp"
        )
    ]
    assert history == ["Preparing", "Charging", "Finishing", "Available"]
