"""Levity on PostgreSQL: migrate, serve with daphne, and store a whole charging session.

A database on the throwaway PostgreSQL server, migrated by ``manage.py migrate``
(tests/postgres_server.py), is selected with DATABASE_URL; the rows are read back
with psycopg, not through Django. About PostgreSQL: runs in the PostgreSQL pass.
"""

from __future__ import annotations

import psycopg
import pytest
from ocpp.v16 import call

from tests.conftest import DaphneServer, server_env
from tests.ocpp_client import OCPPClient
from tests.postgres_server import rows

pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def pg_url(migrated_postgres) -> str:
    return migrated_postgres


@pytest.fixture(scope="module")
def pg_daphne(pg_url, tmp_path_factory):
    """daphne serving from the migrated database."""
    env = server_env(tmp_path_factory.mktemp("unused") / "unused.sqlite3", DATABASE_URL=pg_url)
    server = DaphneServer(env, tmp_path_factory.mktemp("pg-logs") / "daphne.log").start()
    yield server
    server.stop()


async def test_charging_session_is_stored_in_postgresql(pg_daphne, pg_url):
    with psycopg.connect(pg_url) as db:
        db.execute(
            "INSERT INTO transactions_idtag (id_tag, status, parent_id_tag, note, created_at) "
            "VALUES ('PG-CARD', 'Accepted', 'FLEET', '', now())"
        )
    client = await OCPPClient.open(pg_daphne.ws_url("CP-PG-1"))
    try:
        boot = await client.boot(vendor="Acme", model="AC-22", firmware_version="3.1")
        assert boot.status == "Accepted"
        await client.status(1, "Preparing")
        started = await client.start_transaction(1, "PG-CARD", 1000, "2025-03-01T10:00:00Z")
        assert started.id_tag_info == {"status": "Accepted", "parent_id_tag": "FLEET"}
        await client.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[
                    {
                        "timestamp": "2025-03-01T10:05:00Z",
                        "sampled_value": [
                            {"value": "1.5", "unit": "kWh"},
                            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                        ],
                    }
                ],
            )
        )
        stopped = await client.stop_transaction(
            started.transaction_id,
            4000,
            timestamp="2025-03-01T10:45:00Z",
            reason="EVDisconnected",
            id_tag="PG-CARD",
        )
        assert stopped.id_tag_info["status"] == "Accepted"
        again = await client.start_transaction(1, "PG-CARD", 1000, "2025-03-01T10:00:00Z")
        assert again.transaction_id == started.transaction_id  # a retry, not a new row
    finally:
        await client.close()

    [cp] = rows(
        pg_url,
        "SELECT id, charge_point_vendor, charge_point_model, firmware_version, last_boot_at "
        "FROM chargepoints_chargepoint WHERE charge_point_id = 'CP-PG-1'",
    )
    assert cp[1:4] == ("Acme", "AC-22", "3.1") and cp[4] is not None
    assert rows(
        pg_url,
        "SELECT connector_id, status FROM chargepoints_connector WHERE charge_point_id = %s",
        cp[0],
    ) == [(1, "Preparing")]
    [tx] = rows(
        pg_url,
        "SELECT id, connector_id, id_tag, meter_start, meter_stop, energy_wh, stop_reason, "
        "stop_timestamp - start_timestamp FROM transactions_transaction "
        "WHERE charge_point_id = %s",
        cp[0],
    )
    assert tx[0] == started.transaction_id
    assert tx[1:7] == (1, "PG-CARD", 1000, 4000, 3000, "EVDisconnected")
    assert tx[7].total_seconds() == 45 * 60
    assert rows(
        pg_url,
        "SELECT measurand, value, unit, normalized_value, normalized_unit "
        "FROM transactions_metervalue WHERE transaction_id = %s ORDER BY id",
        tx[0],
    ) == [
        ("Energy.Active.Import.Register", "1.5", "kWh", 1500.0, "Wh"),
        ("Power.Active.Import", "7200", "W", 7200.0, "W"),
    ]


async def test_unknown_tag_still_gets_a_transaction_on_postgresql(pg_daphne, pg_url):
    client = await OCPPClient.open(pg_daphne.ws_url("CP-PG-2"))
    try:
        started = await client.start_transaction(2, "NOBODY", 0, "2025-03-02T08:00:00Z")
    finally:
        await client.close()
    assert started.id_tag_info == {"status": "Invalid"}
    assert rows(
        pg_url,
        "SELECT id_tag_status FROM transactions_transaction WHERE id = %s",
        started.transaction_id,
    ) == [("Invalid",)]
