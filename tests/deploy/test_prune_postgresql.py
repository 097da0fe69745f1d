"""``manage.py prune`` on PostgreSQL: monthly partitions of the meter values, BRIN indexes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tests.conftest import PROJECT_DIR, server_env
from tests.deploy.topology import rows
from transactions.partitions import MONTHS_AHEAD, month_start

pytestmark = pytest.mark.once  # the deploy topology's own PostgreSQL, not the test database

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
            "meter_serial_number, is_connected, remote_address, password_hash, new_password_hash, created_at) "
            "VALUES ('CP-PRUNE-PG', 'Accepted', '', '', '', '', '', '', '', '', '', false, '', '', '', now()) "
            "RETURNING id"
        ).fetchall()
        for days in (400, 40, 31, 29, 1):
            db.execute(
                "INSERT INTO transactions_metervalue (charge_point_id, connector_id, timestamp, "
                "received_at, value, measurand, phase, unit, context, location, format, normalized_unit) "
                "VALUES (%s, 1, now() - make_interval(days => %s), now(), %s, "
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
    # Meter values are aged by their own timestamp: other tests' rows in this database
    # may be past retention too, so only this charge point's rows are counted below.
    assert "meter values: deleted" in result.stdout
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


# --- monthly partitions of the meter values (transactions.partitions) ---------------


def manage(topology, tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=server_env(tmp_path / "unused.sqlite3", DATABASE_URL=topology.database_url, **env),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def charge_point_row(database_url: str, charge_point_id: str) -> int:
    with psycopg.connect(database_url) as db:
        [(pk,)] = db.execute(
            "INSERT INTO chargepoints_chargepoint (charge_point_id, registration_status, "
            "charge_point_vendor, charge_point_model, charge_point_serial_number, "
            "charge_box_serial_number, firmware_version, iccid, imsi, meter_type, "
            "meter_serial_number, is_connected, remote_address, password_hash, new_password_hash, created_at) "
            "VALUES (%s, 'Accepted', '', '', '', '', '', '', '', '', '', false, '', '', '', now()) RETURNING id",
            (charge_point_id,),
        ).fetchall()
    return pk


def insert_meter_values(database_url: str, charge_point: int, received: list[datetime]) -> None:
    with psycopg.connect(database_url) as db:
        for moment in received:
            db.execute(
                "INSERT INTO transactions_metervalue (charge_point_id, connector_id, timestamp, "
                "received_at, value, measurand, phase, unit, context, location, format, normalized_unit) "
                "VALUES (%s, 1, %s, %s, %s, 'Energy.Active.Import.Register', '', 'Wh', "
                "'Sample.Periodic', 'Outlet', 'Raw', '')",
                (charge_point, moment, moment, moment.isoformat()),
            )


def partition_of(database_url: str, charge_point: int) -> dict[str, str]:
    return dict(
        rows(
            database_url,
            "SELECT value, tableoid::regclass::text FROM transactions_metervalue WHERE charge_point_id = %s",
            charge_point,
        )
    )


def test_meter_values_are_partitioned_by_month_on_postgresql(topology):
    now = datetime.now(timezone.utc)
    [(strategy, key)] = rows(
        topology.database_url,
        "SELECT p.partstrat, pg_get_partkeydef(p.partrelid) FROM pg_partitioned_table p "
        "WHERE p.partrelid = 'transactions_metervalue'::regclass",
    )
    assert (strategy, key.replace('"', "")) == ("r", "RANGE (timestamp)")
    children = {name for (name,) in rows(
        topology.database_url,
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'transactions_metervalue'::regclass",
    )}  # fmt: skip
    expected = {f"transactions_metervalue_{month_start(now, n):%Y_%m}" for n in range(MONTHS_AHEAD + 1)}
    assert expected | {"transactions_metervalue_default"} <= children
    cp = charge_point_row(topology.database_url, "CP-PART-NOW")
    insert_meter_values(topology.database_url, cp, [now])
    assert partition_of(topology.database_url, cp) == {
        now.isoformat(): f"transactions_metervalue_{now:%Y_%m}"
    }


def test_a_new_months_partition_takes_its_rows_from_the_default_partition(topology, tmp_path):
    now = datetime.now(timezone.utc)
    far = month_start(now, MONTHS_AHEAD + 1)
    cp = charge_point_row(topology.database_url, "CP-PART-AHEAD")
    insert_meter_values(topology.database_url, cp, [far + timedelta(days=3)])
    assert set(partition_of(topology.database_url, cp).values()) == {"transactions_metervalue_default"}
    manage(
        topology, tmp_path, "shell", "-c",
        "from django.utils import timezone; from transactions.partitions import ensure_partitions; "
        f"print(ensure_partitions(timezone.now(), months_ahead={MONTHS_AHEAD + 1}))",
    )  # fmt: skip
    assert set(partition_of(topology.database_url, cp).values()) == {f"transactions_metervalue_{far:%Y_%m}"}


def test_prune_drops_months_past_retention_and_deletes_the_boundary_month_row_by_row(topology, tmp_path):
    now = datetime.now(timezone.utc)
    old, boundary, recent = (month_start(now, n) for n in (-4, -3, -2))
    manage(
        topology, tmp_path, "shell", "-c",
        "from datetime import datetime; from transactions.partitions import create_partition; "
        + "; ".join(f"create_partition(datetime.fromisoformat('{m.isoformat()}'))" for m in (old, boundary, recent)),
    )  # fmt: skip
    cp = charge_point_row(topology.database_url, "CP-PART-PRUNE")
    received = [old + timedelta(days=9), boundary + timedelta(days=5), boundary + timedelta(days=20), recent]
    insert_meter_values(topology.database_url, cp, received)
    cutoff = boundary + timedelta(days=12)
    days = (now - cutoff).days  # the cutoff prune computes is a little earlier: still mid-month
    result = manage(topology, tmp_path, "prune", LEVITY_METER_VALUE_RETENTION_DAYS=str(days))
    assert f"meter values: dropped partition transactions_metervalue_{old:%Y_%m}" in result.stdout
    assert f"transactions_metervalue_{boundary:%Y_%m}" not in result.stdout
    assert not rows(
        topology.database_url, "SELECT to_regclass(%s)::text", f"transactions_metervalue_{old:%Y_%m}"
    )[0][0]
    assert partition_of(topology.database_url, cp) == {
        received[2].isoformat(): f"transactions_metervalue_{boundary:%Y_%m}",
        received[3].isoformat(): f"transactions_metervalue_{recent:%Y_%m}",
    }
