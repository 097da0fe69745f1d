"""Turning a run's results into the Markdown summary, the target check and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LEVITY = "levity"
LEVITY_POSTGRESQL = "levity_postgresql"
BASELINE_A = "ocpp_websockets"
BASELINE_B = "bare_channels"
BARE_NO_HOP = "bare_channels_no_hop"

LABELS = {
    LEVITY: "Levity",
    LEVITY_POSTGRESQL: "Levity on PostgreSQL",
    BASELINE_A: "(a) ocpp+websockets",
    BASELINE_B: "(b) bare Channels",
    BARE_NO_HOP: "(b0) bare Channels, no per-message DB hop",
}
SCENARIOS = ("heartbeat", "meter_values", "session")


def _find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return round(a / b, 2)


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratios(results: dict) -> list[dict]:
    rows = results.get("throughput", [])
    out = []
    for scenario in SCENARIOS:
        for n in sorted({r["n"] for r in rows if r["scenario"] == scenario}):
            lev = _find(rows, server=LEVITY, scenario=scenario, n=n)
            a = _find(rows, server=BASELINE_A, scenario=scenario, n=n)
            b = _find(rows, server=BASELINE_B, scenario=scenario, n=n)
            if lev is None:
                continue
            out.append(
                {
                    "scenario": scenario,
                    "n": n,
                    "levity_vs_a": _ratio(lev["msg_per_s"], a["msg_per_s"] if a else None),
                    "levity_vs_b": _ratio(lev["msg_per_s"], b["msg_per_s"] if b else None),
                }
            )
    return out


def targets(results: dict) -> list[dict]:
    """Issue 7's targets, evaluated on this run's figures (at N=100 unless said)."""
    rows = results.get("throughput", [])
    out: list[dict] = []

    def add(name: str, value: Any, goal: str, met: bool | None) -> None:
        out.append({"target": name, "value": value, "goal": goal, "met": met})

    lev_hb = _find(rows, server=LEVITY, scenario="heartbeat", n=100)
    a_hb = _find(rows, server=BASELINE_A, scenario="heartbeat", n=100)
    b_hb = _find(rows, server=BASELINE_B, scenario="heartbeat", n=100)
    lev_mv = _find(rows, server=LEVITY, scenario="meter_values", n=100)
    a_mv = _find(rows, server=BASELINE_A, scenario="meter_values", n=100)
    if lev_hb and a_hb:
        r = _ratio(lev_hb["msg_per_s"], a_hb["msg_per_s"])
        add("Heartbeat throughput vs (a), N=100", r, ">= 0.8", r is not None and r >= 0.8)
    if lev_hb and b_hb:
        r = _ratio(lev_hb["msg_per_s"], b_hb["msg_per_s"])
        add("Heartbeat throughput vs (b), N=100", r, ">= 0.75", r is not None and r >= 0.75)
    if lev_hb:
        p = lev_hb["p99_ms"]
        add("Heartbeat p99, N=100 (ms)", p, "<= 150", p is not None and p <= 150)
    if lev_mv and a_mv:
        r = _ratio(lev_mv["msg_per_s"], a_mv["msg_per_s"])
        add("Persisted MeterValues throughput vs (a), N=100", r, ">= 1.0", r is not None and r >= 1.0)
    if lev_mv:
        p = lev_mv["p99_ms"]
        add("MeterValues p99, N=100 (ms)", p, "<= 150", p is not None and p <= 150)
    big = [r for r in rows if r["server"] == LEVITY and r["n"] >= 1000]
    if big:
        errors = sum(r["error_count"] + sum(r["setup_errors"].values()) for r in big)
        worst = max((r["p99_ms"] or 0) for r in big)
        add(f"N={big[0]['n']}: errors (all scenarios)", errors, "0", errors == 0)
        add(f"N={big[0]['n']}: worst p99 (ms)", worst, "<= 1000", worst <= 1000)
    lost = [r["nothing_lost"] for r in rows if r["server"] == LEVITY and r.get("nothing_lost")]
    if lost:
        ok = all(x["ok"] for x in lost)
        add("Nothing lost (every Levity run)", "ok" if ok else "LOST", "ok", ok)
    mem = _find(results.get("idle_memory", []), server=LEVITY)
    if mem:
        kb = mem["kb_per_connection"]
        add(
            f"RSS per idle connection at {mem['connections']:,} (KB)",
            kb,
            "<= 50",
            kb is not None and kb <= 50,
        )
    storm = _find(results.get("storm", []), server=LEVITY)
    if storm:
        ok = storm["answered"] == storm["charge_points"] and storm["failures"] == 0
        add(
            f"Storm of {storm['charge_points']:,}: answered / failures",
            f"{storm['answered']} / {storm['failures']}",
            "all / 0",
            ok,
        )
        runs = storm.get("p99_runs_s") or [storm["p99_s"]]
        label = "Storm p99 (s)" if len(runs) == 1 else f"Storm p99 (s), median of {len(runs)} runs"
        add(label, storm["p99_s"], "<= 2", storm["p99_s"] is not None and storm["p99_s"] <= 2)
    redis = results.get("redis") or {}
    command = redis.get("command_round_trip")
    if command and command.get("p99_ms") is not None:
        add(
            "CS->CP command via the other process, p99 (ms)",
            command["p99_ms"],
            "<= 50",
            command["p99_ms"] <= 50,
        )
    return out


def postgresql(results: dict) -> list[dict]:
    """Levity on PostgreSQL beside Levity on SQLite: each scenario and N that both ran."""
    rows = results.get("throughput", [])
    out = []
    for scenario in SCENARIOS:
        for n in sorted({r["n"] for r in rows if r["scenario"] == scenario}):
            lite = _find(rows, server=LEVITY, scenario=scenario, n=n)
            pg = _find(rows, server=LEVITY_POSTGRESQL, scenario=scenario, n=n)
            if lite is None or pg is None:
                continue
            out.append(
                {
                    "scenario": scenario,
                    "n": n,
                    "sqlite_msg_per_s": lite["msg_per_s"],
                    "postgresql_msg_per_s": pg["msg_per_s"],
                    "postgresql_vs_sqlite": _ratio(pg["msg_per_s"], lite["msg_per_s"]),
                    "sqlite_p99_ms": lite["p99_ms"],
                    "postgresql_p99_ms": pg["p99_ms"],
                    "sqlite_server_cpu_pct": lite["server_cpu_pct"],
                    "postgresql_server_cpu_pct": pg["server_cpu_pct"],
                    "postgresql_database_cpu_pct": pg.get("database_cpu_pct"),
                    "postgresql_nothing_lost": (pg.get("nothing_lost") or {}).get("ok"),
                }
            )
    return out


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"# Levity benchmark ({meta['mode']} run, {meta['finished']})",
        "",
        f"Machine: {meta['cpus']} CPUs, Python {meta['python']}; {meta['versions']}.",
        f"Each throughput figure: {meta['warmup_s']}s warm-up, then {meta['duration_s']}s measured; "
        "closed loop (each charge point sends its next CALL when the answer arrives). "
        f"{meta['cpu_accounting']}",
        "",
        "## Throughput and latency",
        "",
        "| scenario | N | Levity msg/s | (a) msg/s | (b) msg/s | Levity/(a) | Levity/(b) "
        "| Levity p50 / p99 ms | (a) p50 / p99 ms | (b) p50 / p99 ms | Levity errors | nothing lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = results.get("throughput", [])
    for scenario in SCENARIOS:
        for n in sorted({r["n"] for r in rows if r["scenario"] == scenario}):
            lev = _find(rows, server=LEVITY, scenario=scenario, n=n) or {}
            a = _find(rows, server=BASELINE_A, scenario=scenario, n=n) or {}
            b = _find(rows, server=BASELINE_B, scenario=scenario, n=n) or {}
            lost = lev.get("nothing_lost")
            lost_text = "–" if not lost else ("ok" if lost["ok"] else "**LOST**")
            if lost and lost["samples_acked"]:
                lost_text += f" ({lost['samples_stored']:,}/{lost['samples_acked']:,} samples)"
            lines.append(
                f"| {scenario} | {n:,} | {_fmt(lev.get('msg_per_s'))} | {_fmt(a.get('msg_per_s'))} "
                f"| {_fmt(b.get('msg_per_s'))} "
                f"| {_fmt(_ratio(lev.get('msg_per_s'), a.get('msg_per_s')), 2)} "
                f"| {_fmt(_ratio(lev.get('msg_per_s'), b.get('msg_per_s')), 2)} "
                f"| {_fmt(lev.get('p50_ms'), 1)} / {_fmt(lev.get('p99_ms'), 1)} "
                f"| {_fmt(a.get('p50_ms'), 1)} / {_fmt(a.get('p99_ms'), 1)} "
                f"| {_fmt(b.get('p50_ms'), 1)} / {_fmt(b.get('p99_ms'), 1)} "
                f"| {_fmt(lev.get('error_count'))} | {lost_text} |"
            )
    pg_rows = results.get("postgresql") or []
    if pg_rows or results.get("postgresql_note"):
        lines += [
            "",
            "## Levity on PostgreSQL beside SQLite",
            "",
            "The same load, in the same run: Levity with `DATABASE_URL` on a throwaway PostgreSQL "
            "server (fsync and synchronous commit off; pinned to the server's CPU, so the "
            "server side has one core either way). Server CPU is daphne's; "
            "database CPU is PostgreSQL's processes'.",
            "",
        ]
        if results.get("postgresql_note"):
            lines.append(results["postgresql_note"])
        if pg_rows:
            lines += [
                "| scenario | N | SQLite msg/s | PostgreSQL msg/s | PostgreSQL/SQLite | SQLite p99 ms "
                "| PostgreSQL p99 ms | server CPU % SQLite / PostgreSQL | database CPU % | nothing lost |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            for r in pg_rows:
                lost = r["postgresql_nothing_lost"]
                lines.append(
                    f"| {r['scenario']} | {r['n']:,} | {_fmt(r['sqlite_msg_per_s'])} "
                    f"| {_fmt(r['postgresql_msg_per_s'])} | {_fmt(r['postgresql_vs_sqlite'], 2)} "
                    f"| {_fmt(r['sqlite_p99_ms'], 1)} | {_fmt(r['postgresql_p99_ms'], 1)} "
                    f"| {_fmt(r['sqlite_server_cpu_pct'], 0)} / {_fmt(r['postgresql_server_cpu_pct'], 0)} "
                    f"| {_fmt(r['postgresql_database_cpu_pct'], 0)} "
                    f"| {'–' if lost is None else ('ok' if lost else '**LOST**')} |"
                )
    b0 = [r for r in rows if r["server"] == BARE_NO_HOP]
    if b0:
        lines += [
            "",
            f"{LABELS[BARE_NO_HOP]}: "
            + ", ".join(
                f"{r['scenario']} N={r['n']:,}: {_fmt(r['msg_per_s'])} msg/s, p99 {_fmt(r['p99_ms'], 1)} ms"
                for r in b0
            )
            + ". Channels 4.3 sends every message of a stock consumer through "
            "`aclose_old_connections()` on the sync thread first; (b0) is (b) without that hop.",
        ]
    lines += ["", "## Targets (issue 7)", "", "| target | value | goal | met |", "| --- | ---: | --- | --- |"]
    for t in results.get("targets", []):
        met = "yes" if t["met"] else ("no" if t["met"] is False else "–")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} | {t['goal']} | {met} |")

    mem = results.get("idle_memory", [])
    if mem:
        lines += [
            "",
            "## Memory per idle connection",
            "",
            "Server RSS before and after opening the connections (each connected and "
            "answered one BootNotification), divided by the number of connections.",
            "",
            "| server | connections | RSS before MB | RSS after MB | KB per connection | connect time s | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in mem:
            lines.append(
                f"| {LABELS.get(m['server'], m['server'])} | {m['connections']:,} | {_fmt(m['rss_before_mb'], 1)} "
                f"| {_fmt(m['rss_after_mb'], 1)} | {_fmt(m['kb_per_connection'], 1)} "
                f"| {_fmt(m['connect_s'], 1)} | {sum(m['errors'].values())} |"
            )
    storms = results.get("storm", [])
    if storms:
        lines += [
            "",
            "## Reconnect storm",
            "",
            "All charge points connect at the same instant and send BootNotification then "
            "StatusNotification; time per charge point from the start to the second answer. "
            "For Levity the charge points are known (registered before, as after a restart). "
            "Each server takes the storm several times, each time freshly started and idle, the "
            "servers taking turns (so that each meets the machine's slow and fast spells alike): "
            "the figures are those of the run with the median p99, beside every run's p99; "
            "answered and failures are the worst of all runs.",
            "",
            "| server | charge points | answered | failures | all answered s | p50 s | p99 s "
            "| p99 of each run s | message p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for s in storms:
            runs = ", ".join(_fmt(p, 2) for p in s.get("p99_runs_s", [s["p99_s"]]))
            lines.append(
                f"| {LABELS.get(s['server'], s['server'])} | {s['charge_points']:,} | {s['answered']:,} "
                f"| {s['failures']} | {_fmt(s['all_answered_s'], 2)} | {_fmt(s['p50_s'], 2)} "
                f"| {_fmt(s['p99_s'], 2)} | {runs} | {_fmt(s['message_p99_ms'], 1)} |"
            )
    redis = results.get("redis")
    if redis:
        lines += ["", "## With REDIS_URL: one and two daphne processes", ""]
        if redis.get("note"):
            lines += [redis["note"], ""]
        runs = redis.get("throughput", [])
        if runs:
            lines += [
                "| set-up | scenario | N | msg/s | p50 ms | p99 ms | errors | nothing lost | CPU: servers / redis / load generator |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
            ]
            for r in runs:
                lost = r.get("nothing_lost")
                cpu = r.get("cpu", {})
                lines.append(
                    f"| {r['setup']} | {r['scenario']} | {r['n']:,} | {_fmt(r['msg_per_s'])} "
                    f"| {_fmt(r['p50_ms'], 1)} | {_fmt(r['p99_ms'], 1)} | {r['error_count']} "
                    f"| {'–' if not lost else ('ok' if lost['ok'] else 'LOST')} "
                    f"| {' + '.join(f'{_fmt(c, 0)}%' for c in cpu.get('servers_pct', []))} / "
                    f"{_fmt(cpu.get('redis_pct'), 0)}% / {_fmt(cpu.get('loadgen_pct'), 0)}% |"
                )
        command = redis.get("command_round_trip")
        if command:
            lines += [
                "",
                f"CS->CP command ({command.get('action')}) through the HTTP API of the process "
                f"that does not hold the socket: {command.get('count', 0)} commands, "
                f"p50 {_fmt(command.get('p50_ms'), 1)} ms, p99 {_fmt(command.get('p99_ms'), 1)} ms, "
                f"failures {command.get('failures', '–')}. {command.get('note', '')}",
            ]
    profiles = results.get("profiles") or {}
    if profiles:
        lines += [
            "",
            "## Profiles (py-spy; throughput scenarios at N=100 over the measured window, storms over the whole storm)",
            "",
        ]
        for scenario, prof in profiles.items():
            threads = ", ".join(f"{t.split(':')[-1].strip()} {p}%" for p, t in prof.get("threads", [])[:3])
            lines += [f"{scenario}: {prof.get('samples', 0)} samples ({threads}). Top own time:", ""]
            lines += [f"- {p}% `{f}`" for p, f in prof.get("own", [])[:12]]
            lines.append("")
    lines += ["", "## CPU: load generator and server", ""]
    lines += [
        '100% = one core. "Other" is the rest of the machine\'s busy time during the window '
        "(kernel network processing, and any other process on this shared machine); a run "
        "with more than 20% other was repeated (at most twice) and the quietest attempt kept.",
        "",
        "| server | scenario | N | server CPU % | load generator CPU % | other % | attempts |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {LABELS.get(r['server'], r['server'])} | {r['scenario']} | {r['n']:,} "
            f"| {_fmt(r['server_cpu_pct'], 0)} | {_fmt(r['loadgen_cpu_pct'], 0)} "
            f"| {_fmt(r.get('other_cpu_pct'), 0)} | {r.get('attempt', 1)} |"
        )
    lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.get("throughput", [])
    fig, axes = plt.subplots(2, len(SCENARIOS), figsize=(15, 8), squeeze=False)
    for col, scenario in enumerate(SCENARIOS):
        for server in (LEVITY, LEVITY_POSTGRESQL, BASELINE_A, BASELINE_B, BARE_NO_HOP):
            series = sorted(
                (r for r in rows if r["server"] == server and r["scenario"] == scenario),
                key=lambda r: r["n"],
            )
            if not series:
                continue
            ns = [r["n"] for r in series]
            axes[0][col].plot(ns, [r["msg_per_s"] for r in series], marker="o", label=LABELS[server])
            axes[1][col].plot(ns, [r["p99_ms"] or 0 for r in series], marker="o", label=LABELS[server])
        axes[0][col].set_title(scenario)
        for row in (0, 1):
            axes[row][col].set_xscale("log")
            axes[row][col].set_xlabel("N (charge points)")
            axes[row][col].grid(True, alpha=0.3)
        axes[0][col].set_ylabel("messages / s")
        axes[1][col].set_ylabel("p99 latency (ms)")
        axes[1][col].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Levity vs baselines: throughput and p99 against N")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
