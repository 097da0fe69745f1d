"""``manage.py status``: the server processes, their charge points and heartbeat ages.

Read from the database, so it sees every process of a deployment, on any machine:
each process's row (refreshed every LEVITY_PROCESS_ALIVE_SECONDS) and the charge
points whose row names it. Last-heartbeat times are written in bulk every
LEVITY_LAST_SEEN_FLUSH_SECONDS, so an age is at most that much older than the truth.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.db.models import Count, Max, Min

from chargepoints.models import ChargePoint, ServerProcess


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


class Command(BaseCommand):
    help = "Show the server processes, the charge points connected to each and their last heartbeat."

    def add_arguments(self, parser):
        parser.add_argument(
            "--charge-points", action="store_true", help="List every connected charge point too."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **options):
        try:
            status = self.status(options["charge_points"])
        except DatabaseError as exc:
            raise CommandError(f"Cannot read the database: {exc}".strip()) from None
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self.print_table(status)

    def status(self, with_charge_points: bool) -> dict:
        now = datetime.now(timezone.utc)
        connected = ChargePoint.objects.filter(is_connected=True)
        per_process = {
            row["server_process"]: row
            for row in connected.values("server_process").annotate(
                charge_points=Count("id"),
                oldest_heartbeat=Min("last_heartbeat_at"),
                newest_heartbeat=Max("last_heartbeat_at"),
            )
        }
        processes = []
        for process in ServerProcess.objects.order_by("started_at", "id"):
            row = per_process.pop(process.id, {})
            processes.append(
                {
                    "id": str(process.id),
                    "hostname": process.hostname,
                    "pid": process.pid,
                    "started_at": process.started_at.isoformat(),
                    "alive_seconds_ago": _age(process.alive_at, now),
                    "charge_points": row.get("charge_points", 0),
                    "oldest_heartbeat_seconds_ago": _age(row.get("oldest_heartbeat"), now),
                    "newest_heartbeat_seconds_ago": _age(row.get("newest_heartbeat"), now),
                }
            )
        status = {
            "processes": processes,
            "charge_points_connected": connected.count(),
            # Online, but held by no registered process (LEVITY_PROCESS_ALIVE_SECONDS=0,
            # or its process died and no other has swept it yet).
            "charge_points_without_process": sum(row["charge_points"] for row in per_process.values()),
            "alive_interval_seconds": settings.LEVITY_PROCESS_ALIVE_SECONDS,
        }
        if with_charge_points:
            status["charge_points"] = [
                {
                    "charge_point_id": cp["charge_point_id"],
                    "process": str(cp["server_process"]) if cp["server_process"] else None,
                    "connected_at": cp["connected_at"].isoformat() if cp["connected_at"] else None,
                    "last_heartbeat_seconds_ago": _age(cp["last_heartbeat_at"], now),
                    "last_seen_seconds_ago": _age(cp["last_seen_at"], now),
                }
                for cp in connected.order_by("charge_point_id").values(
                    "charge_point_id", "server_process", "connected_at", "last_heartbeat_at", "last_seen_at"
                )
            ]
        return status

    def print_table(self, status: dict) -> None:
        write = self.stdout.write
        write(f"Server processes: {len(status['processes'])}")
        for p in status["processes"]:
            write(
                f"  {p['hostname']}:{p['pid']}  id {p['id'][:8]}  started {p['started_at'][:19]}Z  "
                f"alive {_ago(p['alive_seconds_ago'])}  charge points {p['charge_points']}  "
                f"oldest heartbeat {_ago(p['oldest_heartbeat_seconds_ago'])}"
            )
        line = f"Charge points connected: {status['charge_points_connected']}"
        if status["charge_points_without_process"]:
            line += f" ({status['charge_points_without_process']} held by no registered process)"
        write(line)
        for cp in status.get("charge_points", []):
            process = (cp["process"] or "-")[:8]
            write(
                f"  {cp['charge_point_id']}  process {process}  "
                f"heartbeat {_ago(cp['last_heartbeat_seconds_ago'])}  "
                f"seen {_ago(cp['last_seen_seconds_ago'])}"
            )
