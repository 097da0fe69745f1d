"""The nothing-lost check: every acknowledged transaction and MeterValues sample is stored.

Runs in the runner process against Levity's database (Django's ORM, the same
settings as the server) after each Levity run.
"""

from __future__ import annotations

import os
from pathlib import Path

from .frames import SAMPLES_PER_METER_VALUES, id_tag
from .servers import BENCH_SECRET_KEY

_CHUNK = 500  # stay under SQLite's bound-variable limit


#: The Django database alias of Levity's PostgreSQL database, when the run has one.
POSTGRESQL = "postgresql"


def setup_django(database_path: Path, postgresql_url: str | None = None) -> None:
    """Django in the runner: "default" is the SQLite file; "postgresql" the PostgreSQL database."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "levity_site.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{database_path}"
    os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
    os.environ.pop("REDIS_URL", None)
    import django
    from django.conf import settings

    if postgresql_url:
        from levity_site.settings import _database

        config = _database(postgresql_url)
        config.get("OPTIONS", {}).pop("pool", None)  # the runner reads, one connection at a time
        settings.DATABASES[POSTGRESQL] = config
    django.setup()


def migrate(using: str = "default") -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0, database=using)


def create_id_tags(count: int, using: str = "default") -> None:
    """ID tags BENCH0.. the session scenario authorizes with (Accepted)."""
    from transactions.models import IdTag

    IdTag.objects.using(using).bulk_create(
        [IdTag(id_tag=id_tag(i)) for i in range(count)], ignore_conflicts=True, batch_size=500
    )


def register_charge_points(charge_point_ids: list[str], using: str = "default") -> None:
    """Known charge points (for the reconnect storm: they were connected before)."""
    from chargepoints.models import ChargePoint

    ChargePoint.objects.using(using).bulk_create(
        [ChargePoint(charge_point_id=cp) for cp in charge_point_ids], ignore_conflicts=True, batch_size=500
    )


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_nothing_lost(ledger: dict[str, list], cp_ids: list[str], using: str = "default") -> dict:
    """Compare the load generator's acknowledgements with the database.

    ``ledger``: transaction id -> [acknowledged MeterValues messages, acknowledged
    meterStop or None].
    """
    from django.db import connections
    from django.db.models import Count

    from transactions.models import MeterValue, Transaction

    connections[using].close()  # a fresh connection sees everything the server committed
    wanted_cps = set(cp_ids)
    tx_ids = [int(k) for k in ledger]
    found: dict[int, dict] = {}
    for chunk in _chunks(tx_ids):
        for row in (
            Transaction.objects.using(using)
            .filter(pk__in=chunk)
            .values("pk", "charge_point__charge_point_id", "meter_stop", "stop_timestamp")
        ):
            found[row["pk"]] = row
    stored: dict[int, int] = {}
    for chunk in _chunks(tx_ids):
        for row in (
            MeterValue.objects.using(using)
            .filter(transaction_id__in=chunk)
            .values("transaction_id")
            .annotate(n=Count("id"))
        ):
            stored[row["transaction_id"]] = row["n"]

    missing_tx = [
        t for t in tx_ids if t not in found or found[t]["charge_point__charge_point_id"] not in wanted_cps
    ]
    samples_acked = 0
    samples_missing = 0
    stops_acked = 0
    stops_missing = 0
    for key, (meter_messages, stop_meter) in ledger.items():
        tx = int(key)
        acked = meter_messages * SAMPLES_PER_METER_VALUES
        samples_acked += acked
        samples_missing += max(0, acked - stored.get(tx, 0))
        if stop_meter is not None:
            stops_acked += 1
            stopped = found.get(tx)
            if stopped is None or stopped["stop_timestamp"] is None or stopped["meter_stop"] != stop_meter:
                stops_missing += 1
    return {
        "transactions_acked": len(tx_ids),
        "transactions_missing": len(missing_tx),
        "samples_acked": samples_acked,
        "samples_stored": sum(stored.values()),
        "samples_missing": samples_missing,
        "stops_acked": stops_acked,
        "stops_missing": stops_missing,
        "ok": not missing_tx and samples_missing == 0 and stops_missing == 0,
    }
