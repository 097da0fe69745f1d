"""``manage.py prune`` on PostgreSQL, and the BRIN indexes its batches are found with."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from tests.conftest import PROJECT_DIR, server_env
from tests.deploy.topology import rows

BRIN_INDEXES = {
    "transactions_metervalue_received_at_brin": "transactions_metervalue",
    "chargepoints_statusnotification_received_at_brin": "chargepoints_statusnotification",
}


def test_migrations_index_the_time_of_meter_values_and_status_history_with_brin(topology):
    found = rows(
        topology.database_url,
        "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
        list(BRIN_INDEXES),
    )
    assert {name: table for name, table, _ in found} == BRIN_INDEXES
    assert all("USING brin (received_at)" in definition for _, _, definition in found)


def test_prune_deletes_only_rows_past_retention_on_postgresql(topology, tmp_path):
    with psycopg.connect(topology.database_url) as db:
        [(cp,)] = db.execute(
            "INSERT INTO chargepoints_chargepoint (charge_point_id, registration_status, "
            "charge_point_vendor, charge_point_model, charge_point_serial_number, "
            "charge_box_serial_number, firmware_version, iccid, imsi, meter_type, "
            "meter_serial_number, is_connected, remote_address, created_at) "
            "VALUES ('CP-PRUNE-PG', 'Accepted', '', '', '', '', '', '', '', '', '', false, '', now()) "
            "RETURNING id"
        ).fetchall()
        for days in (400, 40, 31, 29, 1):
            db.execute(
                "INSERT INTO transactions_metervalue (charge_point_id, connector_id, timestamp, "
                "received_at, value, measurand, phase, unit, context, location, format, normalized_unit) "
                "VALUES (%s, 1, now(), now() - make_interval(days => %s), %s, "
                "'Energy.Active.Import.Register', '', 'Wh', 'Sample.Periodic', 'Outlet', 'Raw', '')",
                (cp, days, str(days)),
            )
            db.execute(
                "INSERT INTO chargepoints_statusnotification (charge_point_id, connector_id, status, "
                "error_code, info, vendor_id, vendor_error_code, received_at) "
                "VALUES (%s, 1, 'Available', 'NoError', %s, '', '', now() - make_interval(days => %s))",
                (cp, str(days), days),
            )
    result = subprocess.run(
        [sys.executable, "manage.py", "prune", "--batch-size", "2"],
        cwd=PROJECT_DIR,
        env=server_env(
            tmp_path / "unused.sqlite3", DATABASE_URL=topology.database_url,
            LEVITY_METER_VALUE_RETENTION_DAYS="30", LEVITY_STATUS_RETENTION_DAYS="35",
        ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "meter values: deleted 3 rows" in result.stdout
    assert "status history: deleted 2 rows" in result.stdout
    kept = rows(
        topology.database_url,
        "SELECT value FROM transactions_metervalue WHERE charge_point_id = %s ORDER BY value::int",
        cp,
    )
    assert kept == [("1",), ("29",)]
    kept = rows(
        topology.database_url,
        "SELECT info FROM chargepoints_statusnotification WHERE charge_point_id = %s ORDER BY info::int",
        cp,
    )
    assert kept == [("1",), ("29",), ("31",)]
