"""Backup and restore as docs/deployment.md describes it: pg_dump, pg_restore into a fresh database.

A charging session goes through nginx into the topology's PostgreSQL; the database
is dumped while both Levity processes run, restored into a new database, and then:
every table holds the same rows, ``migrate --check`` finds nothing to apply, every
acknowledged message of the session is there, and a Levity process serving from
the restored database stores new transactions and meter values after the old ones
(the sequences came back too).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import psycopg
import pytest
from ocpp.v16 import call

from tests.conftest import PROJECT_DIR, server_env
from tests.deploy.topology import proxied_daphne, rows
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.once  # the deploy topology's own PostgreSQL, not the test database

#: Columns the running processes keep rewriting (last-seen flush, liveness): a dump
#: is one snapshot, a later read of these is not.
LIVE_TABLES = {
    "chargepoints_chargepoint": "id, charge_point_id, charge_point_vendor, charge_point_model, created_at",
    "chargepoints_serverprocess": None,
}


def pg(postgres_server, program: str, *args: str) -> None:
    result = subprocess.run(
        [str(postgres_server.bin_dir / program), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


async def charging_session(topology, charge_point_id: str) -> dict:
    """Boot, start, three MeterValues, stop, through nginx; what the server acknowledged."""
    with psycopg.connect(topology.database_url) as db:
        db.execute(
            "INSERT INTO transactions_idtag (id_tag, status, parent_id_tag, note, created_at) "
            "VALUES ('BACKUP-CARD', 'Accepted', '', '', now()) ON CONFLICT DO NOTHING"
        )
    client = await OCPPClient.open(
        topology.nginx.wss_url(charge_point_id), ssl=topology.certificates.client_context()
    )
    try:
        await client.boot()
        started = await client.start_transaction(1, "BACKUP-CARD", 1000)
        assert started.id_tag_info["status"] == "Accepted"
        for minute, wh in enumerate((1500, 2000, 2500)):
            await client.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=started.transaction_id,
                    # Each reading its own time: one (transaction, time, measurand) is one reading.
                    meter_value=[
                        {"timestamp": f"2026-01-01T00:0{minute}:00Z", "sampled_value": [{"value": str(wh)}]}
                    ],
                )
            )
        await client.stop_transaction(started.transaction_id, 3000)
    finally:
        await client.close()
    return {"transaction_id": started.transaction_id, "samples": ["1500", "2000", "2500"], "meter_stop": 3000}


def table_rows(url: str, table: str) -> list[tuple]:
    columns = LIVE_TABLES.get(table, "*")
    return rows(url, f"SELECT {columns} FROM {table} ORDER BY 1") if columns else []


@pytest.fixture(scope="module")
def restored(topology, postgres_server, tmp_path_factory):
    """The topology's database after a charging session, dumped and restored into a new one."""
    session = asyncio.run(charging_session(topology, "CP-BACKUP-1"))
    dump = tmp_path_factory.mktemp("backup") / "levity.dump"
    pg(postgres_server, "pg_dump", "--format=custom", f"--file={dump}", topology.database_url)
    restored_url = postgres_server.create_database("levity_restored")
    pg(postgres_server, "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_url}", str(dump))
    return session, restored_url


def test_every_table_is_restored_with_the_same_rows(topology, restored):
    _, restored_url = restored
    tables = [
        t
        for (t,) in rows(topology.database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    assert {"transactions_metervalue", "chargepoints_chargepoint", "django_migrations"} <= set(tables)
    for table in tables:
        assert table_rows(restored_url, table) == table_rows(topology.database_url, table), table
    index = "transactions_metervalue_received_at_brin"
    assert rows(restored_url, "SELECT indexname FROM pg_indexes WHERE indexname = %s", index) == [(index,)]


def test_the_restored_database_needs_no_migration(restored, tmp_path):
    _, restored_url = restored
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=PROJECT_DIR, env=server_env(tmp_path / "unused.sqlite3", DATABASE_URL=restored_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_acknowledged_message_of_the_session_is_restored(restored):
    session, restored_url = restored
    [(meter_stop, energy)] = rows(
        restored_url,
        "SELECT meter_stop, energy_wh FROM transactions_transaction WHERE id = %s",
        session["transaction_id"],
    )
    assert (meter_stop, energy) == (3000, 2000)
    samples = rows(
        restored_url,
        "SELECT value FROM transactions_metervalue WHERE transaction_id = %s ORDER BY id",
        session["transaction_id"],
    )
    assert [v for (v,) in samples] == session["samples"]


async def test_levity_serves_from_the_restored_database_after_the_old_rows(restored, tmp_path):
    session, restored_url = restored
    server = proxied_daphne(
        server_env(tmp_path / "unused.sqlite3", DATABASE_URL=restored_url), tmp_path / "levity.log"
    ).start(timeout=60)
    try:
        client = await OCPPClient.open(server.ws_url("CP-BACKUP-1"))
        try:
            started = await client.start_transaction(1, "BACKUP-CARD", 5000)
            await client.stop_transaction(started.transaction_id, 6000)
        finally:
            await client.close()
    finally:
        server.stop()
    assert started.transaction_id > session["transaction_id"]
    [(energy,)] = rows(
        restored_url, "SELECT energy_wh FROM transactions_transaction WHERE id = %s", started.transaction_id
    )
    assert energy == 1000
