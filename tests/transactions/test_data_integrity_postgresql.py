"""The data integrity rules on PostgreSQL: 64-bit energy, idempotency keys with ON
CONFLICT DO NOTHING against partial unique indexes, rebuilt transactions.

A database on the throwaway PostgreSQL server, migrated by `manage.py migrate`
(tests/postgres_server.py), served by daphne with OrphanedTransactionPlugin; rows
read back with psycopg. About PostgreSQL: runs in the PostgreSQL pass.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from ocpp.v16 import call

from tests.conftest import DaphneServer, server_env
from tests.ocpp_client import OCPPClient
from tests.postgres_server import rows

BIG_REGISTER_WH = 3_000_000_000  # above 2^31 - 1 Wh: a DC charger's lifetime register


pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def pg_url(migrated_postgres) -> str:
    return migrated_postgres


@pytest.fixture(scope="module")
def pg_daphne(pg_url, tmp_path_factory):
    env = server_env(
        tmp_path_factory.mktemp("unused") / "unused.sqlite3",
        DATABASE_URL=pg_url,
        LEVITY_PLUGINS=json.dumps([{"class": "plugins.OrphanedTransactionPlugin"}]),
    )
    server = DaphneServer(env, tmp_path_factory.mktemp("pg-integrity-logs") / "daphne.log").start()
    yield server
    server.stop()


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_an_orphan_closed_from_a_register_above_2_31_wh_is_stored(pg_daphne, pg_url):
    client = await OCPPClient.open(pg_daphne.ws_url("CP-PG-BIG"))
    try:
        now = datetime.now(timezone.utc)
        orphan = await client.start_transaction(1, "FLEET-1", 2_000_000_000, iso(now - timedelta(hours=1)))
        await client.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=orphan.transaction_id,
                meter_value=[
                    {
                        "timestamp": iso(now - timedelta(minutes=5)),
                        "sampled_value": [{"value": str(BIG_REGISTER_WH)}],
                    }
                ],
            )
        )
        # Power loss: no StopTransaction; the next start closes the orphan from its reading.
        await client.start_transaction(1, "FLEET-1", 2_100_000_000, iso(now))
    finally:
        await client.close()
    assert rows(
        pg_url,
        "SELECT meter_stop, energy_wh, stopped_by FROM transactions_transaction WHERE id = %s",
        orphan.transaction_id,
    ) == [(BIG_REGISTER_WH, BIG_REGISTER_WH - 2_000_000_000, "server")]


async def test_resent_meter_values_and_status_notifications_are_stored_once(pg_daphne, pg_url):
    client = await OCPPClient.open(pg_daphne.ws_url("CP-PG-DUP"))
    try:
        started = await client.start_transaction(1, "FLEET-2", 0, "2025-03-01T10:00:00Z")
        request = call.MeterValues(
            connector_id=1,
            transaction_id=started.transaction_id,
            meter_value=[{"timestamp": "2025-03-01T10:05:00Z", "sampled_value": [{"value": "500"}]}],
        )
        for _ in range(3):
            await client.call(request)
        for _ in range(2):
            await client.status(1, "Charging", timestamp="2025-03-01T10:00:01Z")
    finally:
        await client.close()
    assert rows(
        pg_url,
        "SELECT count(*) FROM transactions_metervalue WHERE transaction_id = %s",
        started.transaction_id,
    ) == [(1,)]
    assert rows(
        pg_url,
        "SELECT count(*) FROM chargepoints_statusnotification s JOIN chargepoints_chargepoint c "
        "ON c.id = s.charge_point_id WHERE c.charge_point_id = 'CP-PG-DUP'",
    ) == [(1,)]


async def test_a_stop_for_an_unknown_transaction_is_rebuilt_once(pg_daphne, pg_url):
    client = await OCPPClient.open(pg_daphne.ws_url("CP-PG-REBUILT"))
    try:
        for _ in range(2):
            await client.stop_transaction(777777, 9000, timestamp="2025-03-01T11:00:00Z")
    finally:
        await client.close()
    assert rows(
        pg_url,
        "SELECT rebuilt, reported_transaction_id, meter_stop FROM transactions_transaction t "
        "JOIN chargepoints_chargepoint c ON c.id = t.charge_point_id WHERE c.charge_point_id = 'CP-PG-REBUILT'",
    ) == [(True, 777777, 9000)]
