"""Per-charge-point metrics, read from the database when Prometheus scrapes.

The database is the one place that knows the state of every charge point, whichever
daphne process holds its session, and it survives restarts. So these values are
right right after a restart, the same from every process, and a charge point
deleted from the database has no series at the next scrape (label values stay
bounded).

A scrape costs a few queries: charge points, connectors, active transactions (each
with two index lookups for its latest current and energy samples) and one
``SUM(energy_wh) GROUP BY charge point`` over the transactions. They run on one
dedicated thread (``metrics_thread``), never on the event loop nor on the thread
that serves the OCPP sessions' database work.
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
from django.db.models import OuterRef, Subquery, Sum
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


def read_state() -> State:
    close_old_connections()
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
        active=list(
            Transaction.objects.active()
            .annotate(current=_latest(CURRENT), register=_latest(ENERGY_REGISTER))
            .values_list("charge_point_id", "connector_id", "meter_start", "current", "register")
        ),
        energy=dict(
            Transaction.objects.filter(energy_wh__isnull=False)
            .values("charge_point_id")
            .annotate(total=Sum("energy_wh"))
            .values_list("charge_point_id", "total")
        ),
    )


def _families() -> dict[str, GaugeMetricFamily]:
    cp, conn = ["cp_id"], ["cp_id", "connector_id"]
    return {
        "up": GaugeMetricFamily(
            "ocpp_central_up",
            "1 while the Central System serves and reaches its database, 0 when the "
            "database cannot be read.",
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
            "1 for the connector's current status and errorCode (connector 0: the "
            "charge point itself).",
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
            for key, value in (
                ("last_seen", last_seen),
                ("last_heartbeat", last_heartbeat),
                ("last_boot", last_boot),
            ):
                if value is not None:
                    families[key].add_metric([cp_id], value.timestamp())
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
