"""Meter values as the table grows: insert and query times at 10 million rows and on the way.

    python -m bench.data_growth                         # 10,000,000 rows over 12 months
    python -m bench.data_growth --rows 2000000 --out bench/results/data_growth

A throwaway PostgreSQL (the installed Debian server, as the tests start it) is
migrated by Levity's own migrations, so the meter values are partitioned by month
as in production. The table is filled in steps (server-side, rows in time order
over ``--months`` months ending now, one transaction per ``--samples-per-transaction``
rows, ``--charge-points`` charge points); after each step it measures:

- **insert**: batches of 50 MeterValues messages of 10 sampled values (500 rows),
  each one ``executemany`` in its own transaction, as the server's group commit
  writes them: ms per batch and rows/s;
- **queries** (median of several runs, each on another transaction or charge point):
  the samples of a recent transaction (the API's meter values of a transaction), the
  latest energy sample of a transaction, one charge point's last 24 hours, and the
  count of all rows received in the last 15 minutes;
- at the end, **pruning a month**: the time to drop the oldest month's partition,
  and, for comparison, to delete the next month row by row in batches (what pruning
  costs without partitions, and what ``prune`` does with the part of a month it
  cannot drop).

The figures go to ``<out>/data_growth.json`` and ``<out>/data_growth.md`` with the
commit they were measured on. The tests run it with a few thousand rows only
(tests/bench/test_data_growth_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.servers import BENCH_SECRET_KEY, PROJECT_DIR, base_env, git_commit

INSERT_BATCHES = 20
MESSAGES_PER_BATCH = 50
SAMPLES_PER_MESSAGE = 10
QUERY_RUNS = 15
MEASURANDS = [
    "Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
    "Current.Offered", "Frequency", "Power.Offered", "SoC", "Temperature", "Energy.Active.Export.Register",
]  # fmt: skip

QUERIES = {
    "transaction_samples": (
        "SELECT id, timestamp, measurand, value FROM transactions_metervalue "
        "WHERE transaction_id = %(transaction)s ORDER BY timestamp, id"
    ),
    "latest_energy_of_transaction": (
        "SELECT value FROM transactions_metervalue WHERE transaction_id = %(transaction)s "
        "AND measurand = 'Energy.Active.Import.Register' ORDER BY timestamp DESC LIMIT 1"
    ),
    "charge_point_last_24h": (
        "SELECT count(*) FROM transactions_metervalue WHERE charge_point_id = %(charge_point)s "
        "AND timestamp >= %(now)s - interval '24 hours'"
    ),
    "all_rows_last_15_min": (
        "SELECT count(*) FROM transactions_metervalue WHERE received_at >= %(now)s - interval '15 minutes'"
    ),
}


def log(message: str) -> None:
    print(f"[data_growth {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Workload:
    """Fills transactions_metervalue in time order and measures inserts and queries."""

    def __init__(self, url: str, rows: int, months: int, charge_points: int, samples_per_transaction: int):
        import psycopg

        self.db = psycopg.connect(url, autocommit=True)
        self.rows = rows
        self.charge_points = charge_points
        self.samples_per_transaction = samples_per_transaction
        self.end = datetime.now(timezone.utc)
        self.start = self.end - timedelta(days=30.44 * months)
        self.step = (self.end - self.start) / rows
        self.loaded = 0

    def prepare(self) -> None:
        """Monthly partitions, charge points, and the transactions the meter values belong to.

        A database that has run for months has a partition for each of them: ``manage.py
        prune`` creates each month's ahead of time. Here they are made at once.
        """
        month = datetime(self.start.year, self.start.month, 1, tzinfo=timezone.utc)
        while month <= self.end:
            following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=timezone.utc)
            name = f"transactions_metervalue_{month:%Y_%m}"
            if self.db.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:  # type: ignore[index]  # one row
                self.db.execute(
                    f"CREATE TABLE {name} PARTITION OF transactions_metervalue "
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                )
            month = following
        transactions = -(-self.rows // self.samples_per_transaction)
        self.db.execute(
            "INSERT INTO chargepoints_chargepoint (charge_point_id, registration_status, charge_point_vendor, "
            "charge_point_model, charge_point_serial_number, charge_box_serial_number, firmware_version, iccid, "
            "imsi, meter_type, meter_serial_number, is_connected, remote_address, password_hash, new_password_hash, created_at) "
            "SELECT 'BENCH-' || g, 'Accepted', '', '', '', '', '', '', '', '', '', false, '', '', '', now() "
            "FROM generate_series(1, %s) g",
            (self.charge_points,),
        )
        self.cp_ids = [r[0] for r in self.db.execute("SELECT id FROM chargepoints_chargepoint ORDER BY id")]
        self.db.execute(
            "INSERT INTO transactions_transaction (id, charge_point_id, connector_id, id_tag, id_tag_status, "
            "meter_start, start_timestamp, stop_reason, stop_id_tag, meter_stop_below_start, received_at, stopped_by, rebuilt, "
            "stop_before_start) "
            "SELECT g, %s + (g %% %s), 1, 'BENCH', 'Accepted', 0, %s + (g * %s * %s), '', '', false, now(), '', false, "
            "false "
            "FROM generate_series(0, %s - 1) g",
            (
                self.cp_ids[0],
                self.charge_points,
                self.start,
                self.step,
                self.samples_per_transaction,
                transactions,
            ),
        )
        self.db.execute(
            "SELECT setval(pg_get_serial_sequence('transactions_transaction', 'id'), %s)", (transactions,)
        )

    def load_until(self, target: int) -> float:
        """Insert rows server-side until the table holds ``target``; return the seconds it took."""
        started = time.perf_counter()
        chunk = 1_000_000
        while self.loaded < target:
            upto = min(target, self.loaded + chunk)
            self.db.execute(
                "INSERT INTO transactions_metervalue (charge_point_id, connector_id, transaction_id, timestamp, "
                "received_at, value, measurand, phase, unit, context, location, format, normalized_value, "
                "normalized_unit) "
                "SELECT %(cp0)s + ((g / %(spt)s) %% %(cps)s), 1, g / %(spt)s, %(start)s + g * %(step)s, "
                "%(start)s + g * %(step)s, (g %% 100000)::text, (%(measurands)s::text[])[1 + g %% 10], '', 'Wh', "
                "'Sample.Periodic', 'Outlet', 'Raw', g %% 100000, 'Wh' "
                "FROM generate_series(%(lo)s, %(hi)s - 1) g",
                {
                    "cp0": self.cp_ids[0], "spt": self.samples_per_transaction, "cps": self.charge_points,
                    "start": self.start, "step": self.step, "measurands": MEASURANDS,
                    "lo": self.loaded, "hi": upto,
                },
            )  # fmt: skip
            self.loaded = upto
        self.db.execute("ANALYZE transactions_metervalue")
        return time.perf_counter() - started

    def measure_inserts(self) -> dict:
        """Batches of MeterValues rows as the group commit writes them, stamped now."""
        sql = (
            "INSERT INTO transactions_metervalue (charge_point_id, connector_id, transaction_id, timestamp, "
            "received_at, value, measurand, phase, unit, context, location, format, normalized_value, "
            "normalized_unit) VALUES (%s, 1, %s, %s, %s, %s, %s, '', 'Wh', 'Sample.Periodic', 'Outlet', 'Raw', %s, 'Wh') "
            "ON CONFLICT DO NOTHING"  # as Levity inserts them (the meter values' idempotency key)
        )
        last_tx = self.loaded // self.samples_per_transaction
        times = []
        for batch in range(INSERT_BATCHES):
            now = datetime.now(timezone.utc)
            params = [
                (
                    self.cp_ids[(m + batch) % self.charge_points],
                    max(0, last_tx - 1 - m % 50),
                    now + timedelta(microseconds=m),  # each message its own time, as a charge point's
                    now,
                    "1",
                    MEASURANDS[s],
                    1.0,
                )
                for m in range(MESSAGES_PER_BATCH)
                for s in range(SAMPLES_PER_MESSAGE)
            ]
            started = time.perf_counter()
            with self.db.transaction(), self.db.cursor() as cursor:
                cursor.executemany(sql, params)
            times.append(time.perf_counter() - started)
        rows_per_batch = MESSAGES_PER_BATCH * SAMPLES_PER_MESSAGE
        return {
            "rows_per_batch": rows_per_batch,
            "batch_ms_p50": round(statistics.median(times) * 1000, 2),
            "batch_ms_max": round(max(times) * 1000, 2),
            "rows_per_s": round(rows_per_batch / statistics.median(times)),
        }

    def measure_queries(self) -> dict:
        last_tx = self.loaded // self.samples_per_transaction - 1
        results = {}
        for name, sql in QUERIES.items():
            times = []
            for run in range(QUERY_RUNS):
                params = {
                    "transaction": max(0, last_tx - 7 * run),
                    "charge_point": self.cp_ids[(run * 37) % self.charge_points],
                    "now": self.end,
                }
                started = time.perf_counter()
                self.db.execute(sql, params).fetchall()
                times.append(time.perf_counter() - started)
            results[name] = {
                "ms_p50": round(statistics.median(times) * 1000, 2),
                "ms_max": round(max(times) * 1000, 2),
            }
        return results

    def measure_month_drop(self) -> dict:
        [(name, rows)] = self.db.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'transactions_metervalue'::regclass AND c.relname ~ '_[0-9]{4}_[0-9]{2}$' "
            "ORDER BY c.relname LIMIT 1"
        ).fetchall()
        started = time.perf_counter()
        self.db.execute(f"DROP TABLE {name}")
        return {"partition": name, "rows": rows, "ms": round((time.perf_counter() - started) * 1000, 2)}

    def measure_month_delete(self, batch_size: int = 5000) -> dict:
        """The oldest month left deleted row by row, in batches, as ``prune`` deletes what it cannot drop.

        The same statement as chargepoints.retention.delete_before makes Django send.
        """
        [(name, _start, end)] = self.db.execute(
            "SELECT c.relname, substring(pg_get_expr(c.relpartbound, c.oid) FROM $$FROM \\('([^']+)'$$), "
            "substring(pg_get_expr(c.relpartbound, c.oid) FROM $$TO \\('([^']+)'$$) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'transactions_metervalue'::regclass AND c.relname ~ '_[0-9]{4}_[0-9]{2}$' "
            "ORDER BY c.relname LIMIT 1"
        ).fetchall()
        deleted = 0
        started = time.perf_counter()
        while True:
            count = self.db.execute(
                "DELETE FROM transactions_metervalue WHERE received_at < %(end)s AND id IN "
                "(SELECT id FROM transactions_metervalue WHERE received_at < %(end)s LIMIT %(n)s)",
                {"end": end, "n": batch_size},
            ).rowcount
            deleted += count
            if count < batch_size:
                break
        seconds = time.perf_counter() - started
        return {"partition": name, "rows": deleted, "batch_size": batch_size, "s": round(seconds, 2)}

    def table_facts(self) -> dict:
        [(partitions, size)] = self.db.execute(
            "SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
            "WHERE inhparent = 'transactions_metervalue'::regclass"
        ).fetchall()
        return {"partitions": partitions, "size_with_indexes": size}


def migrate(url: str) -> None:
    env = base_env()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "levity_site.settings",
            "DATABASE_URL": url,
            "SECRET_KEY": BENCH_SECRET_KEY,
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        timeout=600,
    )


def run(url: str, rows: int, months: int, charge_points: int, samples_per_transaction: int) -> dict:
    migrate(url)
    workload = Workload(url, rows, months, charge_points, samples_per_transaction)
    workload.prepare()
    steps = []
    for fraction in (0.1, 0.5, 1.0):
        target = max(1, int(rows * fraction))
        load_s = workload.load_until(target)
        log(f"{target:,} rows (loaded in {load_s:.0f} s); measuring")
        steps.append(
            {
                "rows": target,
                "load_s": round(load_s, 1),
                "insert": workload.measure_inserts(),
                "queries": workload.measure_queries(),
                **workload.table_facts(),
            }
        )
    commit = git_commit()
    return {
        "meta": {
            "commit": commit,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "rows": rows,
            "months": months,
            "charge_points": charge_points,
            "samples_per_transaction": samples_per_transaction,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": workload.db.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]  # one row
        },
        "steps": steps,
        "drop_oldest_month": workload.measure_month_drop(),
        "delete_next_month_in_batches": workload.measure_month_delete(),
        "queries": QUERIES,
    }


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"# Meter values as the table grows (commit {meta['commit']}, {meta['date']})",
        "",
        f"PostgreSQL {meta['postgresql']}, {meta['rows']:,} rows over {meta['months']} months, "
        f"{meta['charge_points']:,} charge points, monthly partitions (migration 0005).",
        "",
        "| rows | partitions | size | insert 500 rows p50 / max (ms) | rows/s | "
        + " | ".join(f"{name} p50 (ms)" for name in QUERIES)
        + " |",
        "| ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in QUERIES) + " |",
    ]
    for step in results["steps"]:
        insert = step["insert"]
        lines.append(
            f"| {step['rows']:,} | {step['partitions']} | {step['size_with_indexes']} | "
            f"{insert['batch_ms_p50']} / {insert['batch_ms_max']} | {insert['rows_per_s']:,} | "
            + " | ".join(str(step["queries"][name]["ms_p50"]) for name in QUERIES)
            + " |"
        )
    drop = results["drop_oldest_month"]
    delete = results["delete_next_month_in_batches"]
    lines += [
        "",
        f"Dropping the oldest month ({drop['partition']}, about {drop['rows']:,} rows): {drop['ms']} ms.",
        f"Deleting the next month row by row instead ({delete['partition']}, {delete['rows']:,} rows, "
        f"batches of {delete['batch_size']:,} as `manage.py prune` deletes): {delete['s']} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--charge-points", type=int, default=1000)
    parser.add_argument("--samples-per-transaction", type=int, default=300)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "bench" / "results")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.months < 1 or args.charge_points < 1 or args.samples_per_transaction < 1:
        parser.error("--rows, --months, --charge-points and --samples-per-transaction must be at least 1")
    server = None
    url = args.database_url
    if url is None:
        from tests.postgres_server import PostgresServer, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            parser.error("PostgreSQL is not installed (apt-get install postgresql), or give --database-url")
        server = PostgresServer(bin_dir).start()
        url = server.create_database("levity_data_growth")
    try:
        results = run(url, args.rows, args.months, args.charge_points, args.samples_per_transaction)
    finally:
        if server is not None:
            server.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_growth.json").write_text(json.dumps(results, indent=1) + "\n")
    summary = markdown(results)
    (args.out / "data_growth.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
