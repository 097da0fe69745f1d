"""OrphanedTransactionPlugin: a new StartTransaction closes what was never stopped."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from ocpp.v16 import call

from plugins import OrphanedTransactionPlugin
from plugins.testing import create_test_charge_point
from tests.conftest import DaphneServer, server_env
from tests.ocpp_client import now_iso
from transactions.models import IdTag, Transaction

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, test_db_path, tmp_path_factory):
    """daphne with OrphanedTransactionPlugin() for every charge point."""
    env = server_env(
        test_db_path,
        LEVITY_PLUGINS=json.dumps([{"class": "plugins.OrphanedTransactionPlugin"}]),
    )
    daphne = DaphneServer(env, tmp_path_factory.mktemp("orphans") / "daphne.log").start()
    yield daphne
    daphne.stop()


_seconds = itertools.count()


def energy(value: str, unit: str = "Wh", **fields) -> dict:
    """A sampled value, each a second later than the one before (the same key twice is a resend)."""
    at = datetime.now(timezone.utc) + timedelta(seconds=next(_seconds))
    return {
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sampledValue": [{"value": value, "unit": unit, **fields}],
    }


async def test_an_orphan_on_the_connector_is_closed_with_its_last_energy_reading(connect, server, cp_id):
    await IdTag.objects.acreate(id_tag="DRIVER")
    client = await connect(cp_id, server=server)
    orphan = await client.start_transaction(1, "DRIVER", 1000)
    await client.call(
        call.MeterValues(
            connector_id=1,
            transaction_id=orphan.transaction_id,
            meter_value=[
                energy("1.2", "kWh"),
                energy("1.8", "kWh"),
                energy("16", "A", measurand="Current.Import"),
            ],
        )
    )
    before = datetime.now(timezone.utc)
    # Power came back: the charge point never sent StopTransaction and starts again.
    new = await client.start_transaction(1, "DRIVER", 1800)

    closed = await Transaction.objects.aget(pk=orphan.transaction_id)
    assert new.id_tag_info["status"] == "Accepted"  # not ConcurrentTx: the orphan is gone
    assert new.transaction_id != orphan.transaction_id
    assert (closed.meter_stop, closed.stop_reason, closed.energy_wh) == (1800, "Other", 800)
    assert before - timedelta(seconds=1) <= closed.stop_timestamp <= datetime.now(timezone.utc)
    assert (await Transaction.objects.aget(pk=new.transaction_id)).is_active


async def test_a_reading_dated_far_in_the_future_does_not_close_an_orphan(connect, server, cp_id):
    """Beyond LEVITY_CLOCK_SKEW_TOLERANCE, a date does not make a reading the latest."""
    client = await connect(cp_id, server=server)
    orphan = await client.start_transaction(1, "DRIVER", 1000)
    far = {"timestamp": "9999-12-31T23:59:59Z", "sampledValue": [{"value": "999999"}]}
    await client.call(
        call.MeterValues(
            connector_id=1, transaction_id=orphan.transaction_id, meter_value=[far, energy("1500")]
        )
    )
    await client.start_transaction(1, "DRIVER", 1600)
    closed = await Transaction.objects.aget(pk=orphan.transaction_id)
    assert (closed.meter_stop, closed.energy_wh) == (1500, 500)


async def test_only_readings_dated_far_in_the_future_count_by_their_receive_time(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    orphan = await client.start_transaction(1, "DRIVER", 1000)
    for value, date in (("1300", "9999-12-30"), ("1200", "9999-12-29")):
        reading = {"timestamp": f"{date}T00:00:00Z", "sampledValue": [{"value": value}]}
        await client.call(
            call.MeterValues(connector_id=1, transaction_id=orphan.transaction_id, meter_value=[reading])
        )
    await client.start_transaction(1, "DRIVER", 1400)
    # The last received, not the latest dated.
    assert (await Transaction.objects.aget(pk=orphan.transaction_id)).meter_stop == 1200


async def test_an_orphan_without_meter_values_is_closed_at_its_meter_start(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    orphan = await client.start_transaction(2, "DRIVER", 500)
    await client.start_transaction(2, "OTHER", 500)
    closed = await Transaction.objects.aget(pk=orphan.transaction_id)
    assert (closed.meter_stop, closed.stop_reason, closed.energy_wh) == (500, "Other", 0)


async def test_a_transaction_on_another_connector_is_left_alone(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    charging = await client.start_transaction(1, "DRIVER-1", 0)
    await client.start_transaction(2, "DRIVER-2", 0)
    assert (await Transaction.objects.aget(pk=charging.transaction_id)).is_active


async def test_a_retried_start_does_not_close_its_own_transaction(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    timestamp = now_iso()
    first = await client.start_transaction(1, "DRIVER", 42, timestamp=timestamp)
    retry = await client.start_transaction(1, "DRIVER", 42, timestamp=timestamp)
    assert retry.transaction_id == first.transaction_id
    assert (await Transaction.objects.aget(pk=first.transaction_id)).is_active


async def test_the_closed_orphan_is_logged(connect, server, cp_id):
    client = await connect(cp_id, server=server)
    orphan = await client.start_transaction(1, "DRIVER", 7, timestamp="2026-03-01T10:00:00Z")
    await client.start_transaction(1, "DRIVER", 7, timestamp="2026-03-01T12:00:00Z")
    expected = (
        f"WARNING levity.plugins.OrphanedTransactionPlugin: {cp_id}/1: closed orphaned "
        f"transaction {orphan.transaction_id} (meter_stop 7 Wh, no meter reading: meter_start)"
    )
    assert expected in server.log()


# --- in process, with plugins.testing ---------------------------------------------------


def new_id() -> str:
    return f"T-{uuid.uuid4().hex[:8]}"


async def test_scope_charge_point_closes_the_active_transactions_of_every_connector():
    cp = await create_test_charge_point(new_id(), plugins=[OrphanedTransactionPlugin(scope="charge_point")])
    one = await cp.on_start_transaction(1, "A", 10, "2026-03-01T10:00:00Z")
    two = await cp.on_start_transaction(2, "B", 20, "2026-03-01T10:01:00Z")
    three = await cp.on_start_transaction(3, "C", 30, "2026-03-01T10:02:00Z")
    stopped = {tx.pk: tx.stop_reason async for tx in Transaction.objects.filter(stop_timestamp__isnull=False)}
    assert stopped == {one.transaction_id: "Other", two.transaction_id: "Other"}
    assert (await Transaction.objects.aget(pk=three.transaction_id)).is_active


async def test_the_total_reading_is_preferred_to_a_phase_reading_of_the_same_time():
    cp = await create_test_charge_point(new_id(), plugins=[OrphanedTransactionPlugin()])
    orphan = await cp.on_start_transaction(1, "A", 0, "2026-03-01T10:00:00Z")
    sampled = [
        {"value": "400", "phase": "L1"},
        {"value": "1200"},
        {"value": "400", "phase": "L2"},
    ]
    await cp.on_meter_values(
        1,
        [{"timestamp": "2026-03-01T10:30:00Z", "sampled_value": sampled}],
        transaction_id=orphan.transaction_id,
    )
    await cp.on_start_transaction(1, "A", 1200, "2026-03-01T11:00:00Z")
    assert (await Transaction.objects.aget(pk=orphan.transaction_id)).meter_stop == 1200


async def test_other_charge_points_are_never_touched():
    plugin = OrphanedTransactionPlugin(scope="charge_point")
    elsewhere = await create_test_charge_point(new_id())
    other = await elsewhere.on_start_transaction(1, "A", 0, "2026-03-01T10:00:00Z")
    cp = await create_test_charge_point(new_id(), plugins=[plugin])
    await cp.on_start_transaction(1, "B", 0, "2026-03-01T10:05:00Z")
    assert (await Transaction.objects.aget(pk=other.transaction_id)).is_active


def test_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope must be one of connector, charge_point"):
        OrphanedTransactionPlugin(scope="site")
