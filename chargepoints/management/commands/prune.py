"""``manage.py prune``: delete meter values, status history and command log past their retention."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from chargepoints.retention import GROWING_TABLES, cutoff_for, prune
from transactions import partitions


class Command(BaseCommand):
    help = (
        "Delete meter values, connector status history and CS->CP command log rows older "
        "than LEVITY_METER_VALUE_RETENTION_DAYS, LEVITY_STATUS_RETENTION_DAYS and "
        "LEVITY_COMMAND_RETENTION_DAYS (each defaults to LEVITY_RETENTION_DAYS; 0 keeps "
        "rows for ever). Safe to run while the server runs, e.g. daily from a timer."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Rows deleted per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        if batch_size < 1:
            raise CommandError(f"--batch-size={batch_size} must be at least 1.")
        now = timezone.now()
        if partitions.is_partitioned() and not dry_run:
            for name in partitions.ensure_partitions(now):
                self.stdout.write(f"meter values: created partition {name}")
        for table in GROWING_TABLES:
            cutoff = cutoff_for(table, now)
            if cutoff is None:
                self.stdout.write(f"{table.name}: kept for ever ({table.setting}=0)")
                continue
            when = cutoff.isoformat(timespec="seconds")
            if dry_run:
                count = table.older_than(cutoff).count()
                self.stdout.write(f"{table.name}: {count} rows written before {when} would be deleted")
                continue
            pruned = prune(table, cutoff, batch_size=batch_size)
            for partition in pruned.dropped_partitions:
                rows = "unknown" if partition.estimated_rows is None else f"about {partition.estimated_rows}"
                self.stdout.write(f"{table.name}: dropped partition {partition.name} ({rows} rows)")
            self.stdout.write(f"{table.name}: deleted {pruned.deleted_rows} rows written before {when}")
