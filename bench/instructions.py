"""The instructions a server executes per charge point in a reconnect storm, counted by callgrind.

    python -m bench.instructions                      # Levity, a storm of 200
    python -m bench.instructions --charge-points 50 --server bare_channels
    python -m bench.instructions --keep profiles/main.callgrind   # and callgrind_annotate it

A storm's time on this shared machine drifts a lot from one run to the next; the
instructions the server executes for it much less (timing still decides how many
messages share a database batch, and what runs on timers and in background threads
grows with the storm's length, which under valgrind is the machine's load; the
server's hash seed is fixed so that its dicts and sets do not add to that;
bench/results/measurements.md has the spreads). So this is the measure to compare
two versions of the hot path by, one change at a time, counted side by side under
the same load (bench/results/instructions.md); a full ``bench.run`` then confirms
the time.

The server runs under valgrind's callgrind, counting only while the storm runs
(connect, BootNotification, StatusNotification; not start-up, not the closes).
Every thread of the server is counted: the database thread's work too. The
kernel's work (system calls) is not. Under valgrind the server runs many times
slower, so the storm is smaller than bench.run's 1,000 (whose clients would time
out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import dbcheck
from bench.driver import Group
from bench.processes import ServerProcess
from bench.servers import BACKLOG, PROJECT_DIR, free_port, levity_env

APPLICATIONS = {
    "levity": "levity_site.asgi:application",
    "bare_channels": "bench.bare_channels:application",
}


def count(charge_points: int, server: str, work_dir: Path, settings: dict[str, str] | None = None) -> dict:
    """Run one storm against a server under callgrind; its instruction counts.

    ``settings``: environment variables of the server beyond levity_env's (to count
    a feature's cost by turning it off, say).
    """
    database = work_dir / "levity.db"
    dbcheck.setup_django(database)
    dbcheck.migrate()
    cp_ids = [f"counted-{i}" for i in range(charge_points)]
    dbcheck.register_charge_points(cp_ids)
    port = free_port()
    out = work_dir / "callgrind.out"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "levity_site.server",
        # A handshake waits its turn much longer than daphne's 5 s under valgrind.
        "--websocket_connect_timeout", "600",
        # No keep-alive pings: they are not the storm's work, and their number grows with
        # the storm's length, which under valgrind is the machine's load.
        "--ping-interval", "3600", "--ping-timeout", "3600",
        # As bench.run's: a storm's connects queue in the kernel while the server is slow.
        "-e", f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}", APPLICATIONS[server],
    ]  # fmt: skip
    process = ServerProcess(
        server, argv, port, work_dir / "server.log",
        # The handshake deadline too: under valgrind a storm's upgrades wait far longer.
        env={
            **levity_env(database, **{"LEVITY_HANDSHAKE_TIMEOUT_SECONDS": "600", **(settings or {})}),
            "PYTHONHASHSEED": "0",
        },
        cwd=PROJECT_DIR, stop_timeout=120,  # callgrind writes its counts at exit
    )  # fmt: skip
    process.start(timeout=300)
    try:
        group = Group.start(
            urls=[f"ws://127.0.0.1:{port}/ocpp/"],
            scenario="storm",
            cp_ids=cp_ids,
            procs=1,
            cpu=None,
            timeout=300,
            open_timeout=600,  # a connect waits its turn in the server much longer under valgrind
        )
        _callgrind_control("--instr=on", process)
        started = time.monotonic()
        group.go(lead=0.5)
        results = [worker.expect("result", 600) for worker in group.workers]
        _callgrind_control("--instr=off", process)
        seconds = time.monotonic() - started
        for worker in group.workers:
            worker.send("release")
    finally:
        process.stop()
    answered = sum(len(r["storm"]) for r in results)
    instructions = _total_instructions(out)
    return {
        "server": server,
        "charge_points": charge_points,
        "answered": answered,
        "errors": [r["errors"] for r in results if r["errors"]],
        "instructions": instructions,
        "instructions_per_charge_point": instructions // charge_points,
        "seconds": round(seconds, 1),
        "settings": settings or {},
    }


def _callgrind_control(switch: str, process: ServerProcess) -> None:
    subprocess.run(["callgrind_control", switch, str(process.pid)], check=True, capture_output=True)


def _total_instructions(out: Path) -> int:
    """The instructions counted, from the totals callgrind writes at exit (one file, all threads)."""
    totals = [int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("totals:")]
    if not totals:
        raise RuntimeError(f"no instruction total in {out}")
    return sum(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charge-points", type=int, default=200)
    parser.add_argument("--server", choices=sorted(APPLICATIONS), default="levity")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="FILE",
        help="copy callgrind's profile of the storm to FILE (for callgrind_annotate)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the server, e.g. LEVITY_CALL_RATE=10 (repeatable)",
    )
    args = parser.parse_args()
    settings = dict(setting.partition("=")[::2] for setting in args.setting)
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="levity-instructions-") as work_dir:
        row = count(args.charge_points, args.server, Path(work_dir), settings)
        if args.keep:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(work_dir) / "callgrind.out", args.keep)
    print(json.dumps(row))
    print(
        f"{row['server']}: {row['answered']}/{row['charge_points']} answered, "
        f"{row['instructions_per_charge_point']:,} instructions per charge point",
        file=sys.stderr,
    )
    if row["answered"] != row["charge_points"]:
        sys.exit(f"only {row['answered']} of {row['charge_points']} charge points were answered")


if __name__ == "__main__":
    main()
