"""The benchmark's smoke run (``python bench/run.py --quick``): it keeps working.

Tiny N and one-second windows: this checks that every part of the runner produces
sane figures and that the nothing-lost check passes, not how fast anything is.
The full run is not part of CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import run
from bench.processes import postgres_bin_dir
from tests.services import program, unavailable

pytestmark = pytest.mark.once  # the benchmark's own servers, not the test database

PROJECT_DIR = Path(__file__).resolve().parents[2]
SERVERS = {"levity", "levity_postgresql", "ocpp_websockets", "bare_channels"}
SCENARIOS = {"heartbeat", "meter_values", "session"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> dict:
    if postgres_bin_dir() is None:  # the run measures Levity on PostgreSQL too
        unavailable("PostgreSQL is not installed (enable: sudo apt-get install postgresql)")
    out = tmp_path_factory.mktemp("bench-results")
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", str(out)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return {
        "results": json.loads((out / "results.json").read_text()),
        "summary": (out / "summary.md").read_text(),
        "plot": (out / "throughput_p99.png").read_bytes(),
    }


@pytest.mark.timeout(600)
def test_every_server_and_scenario_has_sane_throughput_and_latency(quick_run):
    rows = quick_run["results"]["throughput"]
    assert {(r["server"], r["scenario"]) for r in rows} == {(s, c) for s in SERVERS for c in SCENARIOS}
    for row in rows:
        assert row["msg_per_s"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
        assert row["error_count"] == 0 and not row["setup_errors"], row
        assert row["connected"] == row["n"], row
        assert row["loadgen_cpu_pct"] > 0 and row["server_cpu_pct"] > 0, row


@pytest.mark.timeout(600)
def test_levity_lost_no_acknowledged_meter_value_or_transaction(quick_run):
    checked = [r for r in quick_run["results"]["throughput"] if r["nothing_lost"]]
    assert {r["scenario"] for r in checked} == {"meter_values", "session"}
    for row in checked:
        lost = row["nothing_lost"]
        assert lost["ok"], lost
        assert lost["samples_acked"] > 0 and lost["samples_stored"] >= lost["samples_acked"]
        assert lost["transactions_acked"] > 0 and lost["transactions_missing"] == 0


@pytest.mark.timeout(600)
def test_idle_memory_and_storm_are_measured_for_every_server(quick_run):
    results = quick_run["results"]
    assert {m["server"] for m in results["idle_memory"]} == SERVERS - {"levity_postgresql"}
    for m in results["idle_memory"]:
        assert m["connections"] > 0 and m["rss_after_mb"] > 0 and not m["errors"], m
    assert {s["server"] for s in results["storm"]} == SERVERS
    for s in results["storm"]:
        assert s["answered"] == s["charge_points"] and s["failures"] == 0, s
        assert 0 < s["p99_s"] <= s["all_answered_s"], s
        assert s["p99_runs_s"] == [s["p99_s"]], s  # --quick: one storm per server


@pytest.mark.timeout(600)
def test_two_processes_with_redis_and_a_command_through_the_other_process(quick_run):
    program("redis-server", "redis-server")
    redis = quick_run["results"]["redis"]
    setups = {(r["setup"], r["scenario"]) for r in redis["throughput"]}
    assert ("2 processes + Redis", "heartbeat") in setups
    assert all(r["error_count"] == 0 for r in redis["throughput"])
    command = redis["command_round_trip"]
    assert command["count"] > 0 and command["failures"] == 0, command
    assert 0 < command["p50_ms"] <= command["p99_ms"]


@pytest.mark.timeout(600)
def test_levity_on_postgresql_is_reported_beside_sqlite(quick_run):
    results = quick_run["results"]
    rows = results["postgresql"]
    assert {(r["scenario"], r["n"]) for r in rows} == {(c, 5) for c in SCENARIOS}
    for row in rows:
        assert row["postgresql_msg_per_s"] > 0 and row["sqlite_msg_per_s"] > 0, row
        assert row["postgresql_vs_sqlite"] == round(row["postgresql_msg_per_s"] / row["sqlite_msg_per_s"], 2)
        # Heartbeats write nothing (last-seen times are flushed later): PostgreSQL may idle.
        assert (
            row["postgresql_database_cpu_pct"] >= 0
            if row["scenario"] == "heartbeat"
            else (row["postgresql_database_cpu_pct"] > 0)
        ), row
    assert all(r["postgresql_nothing_lost"] for r in rows if r["scenario"] != "heartbeat")
    assert "## Levity on PostgreSQL beside SQLite" in quick_run["summary"]
    assert "| scenario | N | SQLite msg/s | PostgreSQL msg/s | PostgreSQL/SQLite |" in quick_run["summary"]


@pytest.mark.timeout(600)
def test_summary_table_targets_and_plot_are_written(quick_run):
    summary = quick_run["summary"]
    assert "| scenario | N | Levity msg/s | (a) msg/s | (b) msg/s |" in summary
    assert "## Targets (issue 7)" in summary
    assert {t["target"] for t in quick_run["results"]["targets"]} >= {"Nothing lost (every Levity run)"}
    assert quick_run["plot"].startswith(b"\x89PNG")


def test_repeated_storms_report_the_median_run_and_the_worst_failures(tmp_path, monkeypatch):
    bench = run.Bench(replace(run.FULL, storm_runs=3), tmp_path, ["levity"], redis=False, profile=False)
    runs = iter(
        [
            {"server": "levity", "p99_s": 2.5, "answered": 1000, "failures": 0, "errors": {}},
            {
                "server": "levity",
                "p99_s": 1.9,
                "answered": 998,
                "failures": 2,
                "errors": {"connect:TimeoutError": 2},
            },
            {"server": "levity", "p99_s": 2.1, "answered": 1000, "failures": 0, "errors": {}},
        ]
    )
    monkeypatch.setattr(bench, "storm", lambda name, profile=False: next(runs))
    try:
        [row] = bench.storms(["levity"])
    finally:
        bench.cleanup()
    assert (row["p99_s"], row["p99_runs_s"]) == (2.1, [2.5, 1.9, 2.1])
    assert (row["answered"], row["failures"], row["errors"]) == (998, 2, {"connect:TimeoutError": 2})


def test_servers_take_turns_at_storms_after_one_uncounted_profiled_storm_each(tmp_path, monkeypatch):
    bench = run.Bench(replace(run.FULL, storm_runs=3), tmp_path, ["levity"], redis=False, profile=True)
    calls = []

    def storm(name, profile=False):
        calls.append((name, profile))
        return {"server": name, "p99_s": 9.9 if profile else 1.0 + len(calls) / 10,
                "answered": 1000, "failures": 0, "errors": {}}  # fmt: skip

    monkeypatch.setattr(bench, "storm", storm)
    try:
        levity, baseline = bench.storms(["levity", "ocpp_websockets"])
    finally:
        bench.cleanup()
    assert calls == [
        ("levity", True), ("ocpp_websockets", True),
        *[(name, False) for _ in range(3) for name in ("levity", "ocpp_websockets")],
    ]  # fmt: skip
    assert levity["p99_runs_s"] == [1.3, 1.5, 1.7]
    assert baseline["p99_runs_s"] == [1.4, 1.6, 1.8]
