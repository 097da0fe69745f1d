"""Per-charge-point metrics, read from the database when Prometheus scrapes.

The database is the one place that knows the state of every charge point, whichever
daphne process holds its session, and it survives restarts. So these values are
right right after a restart, the same from every process, and a charge point
deleted from the database has no series at the next scrape (label values stay
bounded).

A scrape reads the charge points and connectors, the transactions added or stopped
since the previous scrape (``TransactionTally``: energy totals and open transactions
are kept per process and brought up to date by primary key, so a scrape does not
read the whole transactions table) and, for each open transaction, two index
lookups for its latest current and energy samples. This runs on one dedicated
thread, never on the event loop nor on the thread that serves the OCPP sessions'
database work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Case, F, Max, OuterRef, Subquery, When
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chargepoints.models import ChargePoint, Connector
from transactions.models import MeterValue, Transaction
from transactions.repositories import ENERGY_REGISTER

logger = logging.getLogger(__name__)

CURRENT = "Current.Import"
#: A scrape waits at most this long for the database.
READ_TIMEOUT = 20.0

T = TypeVar("T")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="levity-metrics")
_metrics_thread: threading.Thread | None = None


def _mark_thread() -> None:
    global _metrics_thread
    _metrics_thread = threading.current_thread()


def in_metrics_thread(func: Callable[..., T], *args: Any) -> T:
    """Run ``func`` on the metrics thread (one database connection, reused)."""
    if threading.current_thread() is _metrics_thread:
        return func(*args)
    return _executor.submit(_run, func, *args).result(READ_TIMEOUT)


def submit_to_metrics_thread(func: Callable[..., T], *args: Any):
    return _executor.submit(_run, func, *args)


def _run(func: Callable[..., T], *args: Any) -> T:
    _mark_thread()
    return func(*args)


class TransactionTally:
    """Energy of each charge point's finished transactions, and the open transactions.

    Transactions up to ``settled_upto`` (by primary key) are tallied once: the
    finished ones into ``totals``, the open ones into ``open``, which each refresh
    checks again (one lookup by primary key each). Newer transactions, the last
    ``margin`` of them included (concurrent writers may commit out of key order),
    are read at every refresh. The first refresh reads the whole table once. A
    stopped transaction's energy never changes, so ``totals`` only grow.
    """

    def __init__(self, margin: int = 1000):
        self.margin = margin
        self.settled_upto = 0
        self.totals: dict[int, int] = {}
        self.open: set[int] = set()

    def refresh(self) -> tuple[dict[int, int], set[int]]:
        """The energy totals by charge point pk, and the pks of the open transactions."""
        newest = Transaction.objects.aggregate(newest=Max("pk"))["newest"] or 0
        bound = max(newest - self.margin, self.settled_upto)
        if bound > self.settled_upto:
            rows = Transaction.objects.filter(pk__gt=self.settled_upto, pk__lte=bound)
            self._add(self.totals, self.open, rows)
            self.settled_upto = bound
        if self.open:
            self._recheck_open()
        totals, open_now = dict(self.totals), set(self.open)
        self._add(totals, open_now, Transaction.objects.filter(pk__gt=self.settled_upto))
        return totals, open_now

    @staticmethod
    def _add(totals: dict[int, int], open_pks: set[int], rows) -> None:
        """Tally ``rows``: finished ones' energy by charge point, open ones' pks.

        One statement per range, so that each row is seen once, open or finished,
        even while transactions are being stopped.
        """
        open_pk = Case(When(stop_timestamp__isnull=True, then=F("pk")), default=None)
        for charge_point, energy, pk in (
            rows.order_by()
            .annotate(open_pk=open_pk)
            .values_list("charge_point_id", "energy_wh", "open_pk")
            .iterator(chunk_size=10_000)
        ):
            if pk is not None:
                open_pks.add(pk)
            elif energy:
                totals[charge_point] = totals.get(charge_point, 0) + energy

    def _recheck_open(self) -> None:
        still_open: set[int] = set()
        pks = sorted(self.open)
        for start in range(0, len(pks), 500):
            chunk = Transaction.objects.filter(pk__in=pks[start : start + 500])
            self._add(self.totals, still_open, chunk)
        self.open = still_open  # stopped ones are tallied, deleted ones forgotten


_tally = TransactionTally()


@dataclass
class State:
    charge_points: list[tuple] = field(default_factory=list)
    connectors: list[tuple] = field(default_factory=list)
    active: list[tuple] = field(default_factory=list)
    energy: dict[int, int] = field(default_factory=dict)


def _latest(measurand: str) -> Subquery:
    """The transaction's latest sample of a measurand (highest phase when phased)."""
    return Subquery(
        MeterValue.objects.filter(
            transaction=OuterRef("pk"), measurand=measurand, normalized_value__isnull=False
        )
        .order_by("-timestamp", "-normalized_value")
        .values("normalized_value")[:1]
    )


def read_state(tally: TransactionTally = _tally) -> State:
    close_old_connections()
    energy, open_pks = tally.refresh()
    return State(
        charge_points=list(
            ChargePoint.objects.values_list(
                "pk",
                "charge_point_id",
                "is_connected",
                "last_seen_at",
                "last_heartbeat_at",
                "last_boot_at",
            )
        ),
        connectors=list(
            Connector.objects.values_list("charge_point_id", "connector_id", "status", "error_code")
        ),
        active=_open_transactions(open_pks),
        energy=energy,
    )


def _open_transactions(pks: set[int]) -> list[tuple]:
    """(charge point pk, connector id, meter start, latest current, latest register) each."""
    found: list[tuple] = []
    ordered = sorted(pks)
    for start in range(0, len(ordered), 500):
        found.extend(
            Transaction.objects.active()
            .filter(pk__in=ordered[start : start + 500])
            .annotate(current=_latest(CURRENT), register=_latest(ENERGY_REGISTER))
            .values_list("charge_point_id", "connector_id", "meter_start", "current", "register")
        )
    return found


def _families() -> dict[str, GaugeMetricFamily]:
    cp, conn = ["cp_id"], ["cp_id", "connector_id"]
    return {
        "up": GaugeMetricFamily(
            "ocpp_central_up",
            "1 while the Central System serves and reaches its database, 0 when the database cannot be read.",
        ),
        "interval": GaugeMetricFamily(
            "ocpp_heartbeat_interval_seconds",
            "Heartbeat interval the Central System gives charge points at boot.",
        ),
        "connected": GaugeMetricFamily(
            "ocpp_cp_connected", "1 while the charge point's WebSocket is open, else 0.", labels=cp
        ),
        "last_seen": GaugeMetricFamily(
            "ocpp_cp_last_seen_timestamp_seconds",
            "When the charge point last sent anything (Unix time).",
            labels=cp,
        ),
        "last_heartbeat": GaugeMetricFamily(
            "ocpp_cp_last_heartbeat_timestamp_seconds",
            "When the charge point last sent a Heartbeat (Unix time).",
            labels=cp,
        ),
        "last_boot": GaugeMetricFamily(
            "ocpp_cp_last_boot_timestamp_seconds",
            "When the charge point last sent a BootNotification (Unix time).",
            labels=cp,
        ),
        "energy_total": GaugeMetricFamily(
            "ocpp_cp_energy_total_wh",
            "Energy delivered by the charge point's finished transactions (Wh); only grows.",
            labels=cp,
        ),
        "tx_active": GaugeMetricFamily(
            "ocpp_tx_active",
            "Open transactions on the connector: 1 while charging, 0 when idle "
            "(more than 1: unclosed transactions).",
            labels=conn,
        ),
        "tx_energy": GaugeMetricFamily(
            "ocpp_tx_energy_wh",
            "Energy delivered so far in the connector's open transaction (Wh), from its "
            "latest Energy.Active.Import.Register sample.",
            labels=conn,
        ),
        "current": GaugeMetricFamily(
            "ocpp_cp_current_a",
            "Latest Current.Import sample of the connector's open transaction (A; the "
            "highest phase when phased), 0 when idle.",
            labels=conn,
        ),
        "status": GaugeMetricFamily(
            "ocpp_connector_status",
            "1 for the connector's current status and errorCode (connector 0: the charge point itself).",
            labels=["cp_id", "connector_id", "status", "error_code"],
        ),
    }


class OCPPStateCollector(Collector):
    """Prometheus collector of the charge points' state in the database."""

    def describe(self) -> list:
        # Registration asks for names; answer without touching the database.
        return list(_families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        families["interval"].add_metric([], settings.LEVITY_HEARTBEAT_INTERVAL)
        try:
            state = in_metrics_thread(read_state)
        except Exception:
            logger.exception("Reading charge point state for /metrics failed")
            families["up"].add_metric([], 0)
            yield families["up"]
            yield families["interval"]
            return
        families["up"].add_metric([], 1)
        self._add_state(families, state)
        yield from families.values()

    @staticmethod
    def _add_state(families: dict[str, GaugeMetricFamily], state: State) -> None:
        ids = {}
        for pk, cp_id, connected, last_seen, last_heartbeat, last_boot in state.charge_points:
            ids[pk] = cp_id
            families["connected"].add_metric([cp_id], 1 if connected else 0)
            families["energy_total"].add_metric([cp_id], state.energy.get(pk) or 0)
            for family, value in (
                ("last_seen", last_seen),
                ("last_heartbeat", last_heartbeat),
                ("last_boot", last_boot),
            ):
                if value is not None:
                    families[family].add_metric([cp_id], value.timestamp())
        open_count: dict[tuple[int, int], int] = {}
        samples: dict[tuple[int, int], tuple[float | None, float | None]] = {}
        for pk, connector_id, meter_start, current, register in state.active:
            key = (pk, connector_id)
            open_count[key] = open_count.get(key, 0) + 1
            energy = None if register is None else max(register - meter_start, 0)
            samples[key] = (current, energy)
        connectors = set(open_count)
        for pk, connector_id, status, error_code in state.connectors:
            if connector_id > 0:
                connectors.add((pk, connector_id))
            if status and pk in ids:
                families["status"].add_metric(
                    [ids[pk], str(connector_id), status, error_code or "NoError"], 1
                )
        for pk, connector_id in sorted(connectors):
            if pk not in ids:
                continue
            labels = [ids[pk], str(connector_id)]
            families["tx_active"].add_metric(labels, open_count.get((pk, connector_id), 0))
            current, energy = samples.get((pk, connector_id), (0.0, None))
            if current is not None:
                families["current"].add_metric(labels, current)
            if energy is not None:
                families["tx_energy"].add_metric(labels, energy)


state_collector = OCPPStateCollector()
_registered = False


def register_state_collector() -> None:
    """Add the collector to prometheus_client's (and django-prometheus's) REGISTRY."""
    global _registered
    if not _registered:
        REGISTRY.register(state_collector)
        _registered = True
