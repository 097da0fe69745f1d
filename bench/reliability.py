"""Run the reliability scenarios and regenerate docs/reliability.md from their figures.

    python -m bench.reliability                       # the fault tests, fuzzing with a larger
                                                      # budget, SIGKILL with 500 charge points,
                                                      # a soak of 50 charge points for 2 minutes
    python -m bench.reliability --fuzz-examples 5000 --soak-charge-points 1000 --soak-minutes 30
    python -m bench.reliability --soak-from bench/results/soak.json   # the soak of an earlier
                                                      # run (`python -m bench.soak`), not a new one

Each test of tests/reliability (and bench/soak.py) writes a JSON record of its figures
into the directory named by LEVITY_RELIABILITY_RESULTS; this command sets it, runs
them, and turns the records into the table of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.servers import PROJECT_DIR, git_commit

DOC = PROJECT_DIR / "docs" / "reliability.md"
#: Where the records of the last run stay (``--render-only`` renders them again).
RECORDS = PROJECT_DIR / "bench" / "results" / "tmp" / "reliability"

#: Scenario records -> (title, what was tried or injected), in the table's order.
SCENARIOS = {
    "database_sqlite_locked": "SQLite database locked",
    "database_postgresql_restarted": "PostgreSQL stopped and restarted",
    "disk_full_sqlite": "Disk full while writing (SQLite)",
    "slow_query_one_charge_point": "One charge point's slow query (PostgreSQL row lock)",
    "redis_restarted": "Redis stopped and restarted, two processes",
    "fluentd_away": "Fluentd away",
    "cp_disconnects_mid_call": "Charge point gone in the middle of a CS→CP call",
    "process_sigterm": "SIGTERM of one of two processes under load",
    "process_sigkill": "SIGKILL of one of two processes under load",
    "clock_skew_one_year_ahead": "Clock skew: a year ahead",
    "clock_skew_a_month_behind": "Clock skew: a month behind",
    "fuzz_ocpp": "Fuzzing the live OCPP server (hypothesis)",
    "fuzz_api": "Fuzzing the HTTP API (schemathesis)",
    "soak_smoke": "Soak smoke (bench/soak.py --quick)",
    "soak": "Soak (bench/soak.py)",
}


def run(argv: list[str], env: dict[str, str]) -> int:
    print("+", " ".join(argv), flush=True)
    return subprocess.run(argv, cwd=PROJECT_DIR, env=env).returncode


def acknowledged(r: dict) -> str:
    if r["scenario"].startswith("soak"):
        return (f"{r['messages_acknowledged']} messages, {r['transactions_acknowledged']} transactions, "
                f"{r['meter_values_acknowledged']} meter values, {r['wh_acknowledged']} Wh")  # fmt: skip
    if "acknowledged_transactions" in r:
        return (f"{r['calls_answered']}/{r['calls_sent']} calls answered; {r['acknowledged_transactions']} "
                f"transactions, {r.get('acknowledged_meter_values', 0)} meter values, {r['acknowledged_wh']} Wh")  # fmt: skip
    if "requests" in r:
        return f"{r['requests']} requests, statuses {r['statuses']}"
    return f"{r.get('calls_answered', 0)}/{r.get('calls_sent', 0)} calls answered"


def stored(r: dict) -> str:
    if r["scenario"].startswith("soak"):
        return (f"{r['transactions_stored']} transactions, {r['meter_values_stored']} meter values, "
                f"{r['wh_stored']} Wh")  # fmt: skip
    if "stored_transactions" in r:
        return f"{r['stored_transactions']} transactions, {r.get('stored_meter_values', 0)} meter values, {r['stored_wh']} Wh"
    if "server_errors" in r:
        return f"{r['server_errors']} server errors, {r['leaks']} leaks"
    if "stored_status" in r:
        return f"command stored `{r['stored_status']}`, HTTP {r['http_status']} after {r['answered_after_seconds']} s"
    return "—"


def survived(r: dict) -> str:
    parts = []
    for key, label in [("faults", "faults"), ("reconnects", "reconnects"), ("internal_errors", "InternalError answers"),
                       ("calls_cut_by_fault", "calls cut by the fault"), ("examples", "examples"),
                       ("garbage_frames", "non-OCPP frames"), ("callerrors", "CALLERRORs")]:  # fmt: skip
        if key in r:
            value = len(r[key]) if isinstance(r[key], list) else r[key]
            parts.append(f"{value} {label}")
    if "rss_start_mb" in r:
        parts.append(f"RSS {r['rss_start_mb']} → {r['rss_end_mb']} MB")
    if "rss_mb_first" in r:
        parts.append(f"RSS {r['rss_mb_first']} → {r['rss_mb_last']} MB")
    if r.get("memory"):
        highest = max(max(sample["rss_mb"], default=0) for sample in r["memory"])
        parts.append(f"highest RSS of a process {highest} MB ({len(r['memory'])} samples)")
    if "stops_before_start_flagged" in r:
        parts.append(f"{r['stops_before_start_flagged']} stops before start stored flagged (see below)")
    elif "stops_before_start_stored" in r:  # a record from before the flag
        parts.append(f"{r['stops_before_start_stored']} stops before start stored unflagged")
    if r.get("others_went_on") is False:
        parts.append(
            f"**others waited {r['others_finished_seconds']} s** (bound {r.get('others_bound_seconds')} s)"
        )
    elif r.get("others_went_on"):
        parts.append(
            f"others done in {r['others_finished_seconds']} s (bound {r['others_bound_seconds']} s), "
            f"the slow one's stop stored {r['slow_stored_seconds']} s in, once its row was free"
        )
    return ", ".join(parts) or "—"


def lost(r: dict) -> str:
    extra = [f"{r[k]} {k.replace('_', ' ')}" for k in ("duplicated", "half_written") if r.get(k)]
    return f"{r.get('lost', 0)}" + (f" ({', '.join(extra)})" if extra else "")


def render(records: dict[str, dict], command: str, commit: str) -> str:
    lines = [
        "# Reliability under faults and hostile input",
        "",
        "Every scenario below runs real Levity processes (daphne) with real charge points",
        "over WebSockets, injects its fault, and compares what the server acknowledged",
        "with what the database holds afterwards. The fault tests and the fuzzers are",
        "tests (`tests/reliability/`, a bounded number of examples in CI); the soak is",
        "`bench/soak.py`. This page is generated by:",
        "",
        f"    {command}",
        "",
        "which runs them with larger budgets and rewrites this file from the figures",
        "each one records. For a long fuzzing run alone:",
        "",
        "    LEVITY_FUZZ_EXAMPLES=5000 python -m pytest tests/reliability/test_fuzz_ocpp.py tests/reliability/test_fuzz_api.py",
        "",
        "and for the full soak: `python -m bench.soak --charge-points 1000 --minutes 30`.",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit}.",
        "",
        "| Scenario | Inputs tried / fault injected | Survived | Acknowledged | Stored | Data lost |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, title in SCENARIOS.items():
        r = records.get(name)
        if r is None:
            lines.append(f"| {title} | not run | | | | |")
            continue
        tried = (
            r.get("fault")
            or r.get("inputs")
            or (
                f"{r['charge_points']} charge points, {r['minutes']:g} min, faults: "
                + ", ".join(sorted({f["fault"] for f in r.get("faults", [])}))
            )
        )
        if r.get("commit") and r["commit"] != commit:
            title += f" (run at commit {r['commit']})"
        lines.append(f"| {title} | {tried} | {survived(r)} | {acknowledged(r)} | {stored(r)} | {lost(r)} |")
    lines += [
        "",
        "What every fault test asserts: each CALL is answered by a CALLRESULT or a",
        "CALLERROR `InternalError` (never a hang: 40 s at most), every acknowledged",
        "message is stored once, no transaction exists that its charge point was not given",
        "(nothing half-written), and the server serves again by itself once the fault",
        "ends (a charge point sends again what was not acknowledged, as its queue does).",
        "",
        "## Rules these scenarios rely on",
        "",
        "- **One charge point's slow database work does not hold up the others.** The",
        "  sessions' writes share batches, one transaction each, on one database thread.",
        "  On PostgreSQL a statement of a batch waits at most `DATABASE_LOCK_TIMEOUT`",
        "  (default 1 s) for a row lock. A request that waits longer -- its row held by",
        "  a slow query, an operator's transaction left open -- fails in its savepoint,",
        "  the batch commits for everyone else, and the request is retried alone in a",
        "  transaction of its own on a second thread, waiting up to",
        "  `DATABASE_LOCK_RETRY_TIMEOUT` (default 20 s); its session's further writes",
        "  follow it there, in order. The batch it was in waits at most twice",
        "  `DATABASE_LOCK_TIMEOUT`; the slow charge point is answered once its row is",
        "  free, or, past the retry's wait, with CALLERROR `InternalError`, and resends",
        "  (idempotency keys store a resend once). On SQLite there is one writer by",
        "  design: a lock is on the whole database, every writer waits for it up to",
        "  the busy timeout (20 s), then its charge points get `InternalError` and",
        "  resend (the SQLite-locked scenario).",
        "- **A MeterValues resent after a lost answer is stored once.** When a process",
        "  ends (SIGTERM, SIGKILL) after committing a MeterValues but before its answer",
        "  left, the charge point sends it again to the survivor; its idempotency key",
        "  (transaction, timestamp, measurand, phase, location, context, unit) stores it",
        "  once, and the tests fail on any duplicate.",
        "- **A stop timestamped before its start is stored, acknowledged and flagged.**",
        "  Found by the fuzzer. The charge point's clock was wrong at one of the two, and",
        "  its meterStop is billing data: the stop is answered, both timestamps are kept",
        "  as reported, and the transaction is marked `stop_before_start` (admin, API;",
        "  [data integrity rules](operations.md#data-integrity-rules)). The fuzzer fails on any stop",
        "  before its start stored without the flag, and counts the flagged ones.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=300)
    parser.add_argument("--charge-points", type=int, default=500, help="charge points of the SIGKILL test")
    parser.add_argument("--soak-charge-points", type=int, default=50)
    parser.add_argument("--soak-minutes", type=float, default=2)
    parser.add_argument(
        "--soak-from",
        metavar="FILE",
        type=Path,
        help="the soak's record from an earlier `python -m bench.soak` run instead of a new soak",
    )
    parser.add_argument(
        "--render-only",
        metavar="DIR",
        nargs="?",
        const=str(RECORDS),
        help="regenerate the page from the records in DIR (default: those of the last run)",
    )
    args = parser.parse_args()
    # The command of the run the records come from (a re-render names no directory).
    command = "python -m bench.reliability " + ("" if args.render_only else " ".join(sys.argv[1:]))
    results = Path(args.render_only or RECORDS)
    if not args.render_only:
        shutil.rmtree(results, ignore_errors=True)
        results.mkdir(parents=True)
        env = dict(os.environ, LEVITY_RELIABILITY_RESULTS=str(results),
                   LEVITY_FUZZ_EXAMPLES=str(args.fuzz_examples),
                   LEVITY_RELIABILITY_CHARGE_POINTS=str(args.charge_points))  # fmt: skip
        env.pop("LEVITY_TEST_DATABASE", None)
        run([sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider",
             "--timeout", "900"], env)  # fmt: skip
        run([sys.executable, "-m", "bench.soak", "--quick"], env)
        if args.soak_from:
            shutil.copy(args.soak_from, results / "soak.json")
        else:
            run([sys.executable, "-m", "bench.soak", "--charge-points", str(args.soak_charge_points),
                 "--minutes", str(args.soak_minutes)], env)  # fmt: skip
    records = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    DOC.write_text(render(records, command.strip(), git_commit()))
    print(f"wrote {DOC.relative_to(PROJECT_DIR)} from {len(records)} record(s)")


if __name__ == "__main__":
    main()
