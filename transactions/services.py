"""Authorization, transactions and meter values: the database side of the OCPP session.

The functions are synchronous. The bulk ones (``authorize_many``,
``start_transactions``, ``stop_transactions``, ``record_meter_values_batch``) do the
work of many messages at once, with a result (or an exception) per message; the
session layer runs them in its group commit. Rows are inserted with
``chargepoints.db.insert_rows`` only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import Any

from django.db import IntegrityError, transaction

from chargepoints.db import insert_rows, instance_rows, update_rows
from chargepoints.timestamps import format_timestamp, parse_timestamp

from .models import AuthorizationStatus, IdTag, MeterValue, StoppedBy, SupersededStop, Transaction
from .signals import transaction_recorded

logger = logging.getLogger(__name__)

DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# Units 1.6 implies when a sampledValue names none: Wh is the schema's default,
# which only makes sense for energy; other measurands get their natural unit.
DEFAULT_UNITS = {
    "Current": "A",
    "Voltage": "V",
    "Power.Active": "W",
    "Power.Reactive": "var",
    "Power.Offered": "W",
    "Power.Factor": "",
    "SoC": "Percent",
    "Temperature": "Celsius",
    "Frequency": "",
    "RPM": "",
}
# unit -> (normalized unit, factor)
NORMALIZED_UNITS = {
    "Wh": ("Wh", 1),
    "kWh": ("Wh", 1000),
    "varh": ("varh", 1),
    "kvarh": ("varh", 1000),
    "W": ("W", 1),
    "kW": ("W", 1000),
    "var": ("var", 1),
    "kvar": ("var", 1000),
    "VA": ("VA", 1),
    "kVA": ("VA", 1000),
    "A": ("A", 1),
    "V": ("V", 1),
    "K": ("K", 1),
    "Celsius": ("Celsius", 1),
    "Fahrenheit": ("Fahrenheit", 1),
    "Percent": ("Percent", 1),
}


def _id_tag_info(status: str, tag: IdTag | None) -> dict[str, Any]:
    info: dict[str, Any] = {"status": status}
    if tag is not None:
        if tag.expiry_date is not None:
            info["expiry_date"] = format_timestamp(tag.expiry_date)
        if tag.parent_id_tag:
            info["parent_id_tag"] = tag.parent_id_tag
    return info


@dataclass(frozen=True)
class Authorization:
    """An ID tag to check; ``check_concurrent`` also refuses one already charging."""

    id_tag: str
    now: datetime
    check_concurrent: bool = True


def authorize_many(authorizations: list[Authorization], *, starting: bool = False) -> list[dict[str, Any]]:
    """idTagInfo for many tags at once: one query for the tags, one for those already charging.

    The ConcurrentTx rule lives here alone: an accepted tag that ``check_concurrent``
    is ConcurrentTx when a transaction with it is active; and, when the
    authorizations are for transactions ``starting`` together, when an earlier one
    of them accepted it (as if they came one after the other).
    """
    tags = {tag.id_tag: tag for tag in IdTag.objects.filter(id_tag__in={a.id_tag for a in authorizations})}

    def status(authorization: Authorization) -> str:
        tag = tags.get(authorization.id_tag)
        if tag is None:
            return AuthorizationStatus.INVALID
        if tag.status != AuthorizationStatus.ACCEPTED:
            return tag.status
        if tag.is_expired(authorization.now):
            return AuthorizationStatus.EXPIRED
        return AuthorizationStatus.ACCEPTED

    statuses = [status(a) for a in authorizations]
    to_check = [
        index
        for index, (a, s) in enumerate(zip(authorizations, statuses, strict=True))
        if a.check_concurrent and s == AuthorizationStatus.ACCEPTED
    ]
    if to_check:
        charging = set(
            Transaction.objects.active()
            .filter(id_tag__in={authorizations[index].id_tag for index in to_check})
            .values_list("id_tag", flat=True)
        )
        for index in to_check:
            id_tag = authorizations[index].id_tag
            if id_tag in charging:
                statuses[index] = AuthorizationStatus.CONCURRENT_TX
            elif starting:
                charging.add(id_tag)
    return [_id_tag_info(s, tags.get(a.id_tag)) for a, s in zip(authorizations, statuses, strict=True)]


@dataclass
class StartResult:
    transaction_id: int
    id_tag_info: dict[str, Any]


@dataclass(frozen=True)
class TransactionStart:
    """A StartTransaction, as stored."""

    charge_point_pk: int
    connector_id: int
    id_tag: str
    meter_start: int
    timestamp: datetime
    reservation_id: int | None
    now: datetime
    #: The idTagInfo a plugin decided (context.respond); None: look the tag up.
    decided_id_tag_info: dict[str, Any] | None = None

    @property
    def key(self) -> dict[str, Any]:
        """What makes a retried StartTransaction the same transaction (a unique constraint)."""
        return {
            "charge_point_id": self.charge_point_pk,
            "connector_id": self.connector_id,
            "id_tag": self.id_tag,
            "start_timestamp": self.timestamp,
            "meter_start": self.meter_start,
        }

    def row(self, id_tag_status: str) -> Transaction:
        return Transaction(
            **self.key,
            id_tag_status=id_tag_status,
            reservation_id=self.reservation_id,
            received_at=self.now,
        )


def start_transaction(start: TransactionStart) -> StartResult:
    """Create the transaction, or find the one a retried StartTransaction created."""
    try:
        with transaction.atomic():
            return start_transactions([start])[0]
    except IntegrityError:
        # A retry (its answer was lost) or a concurrent twin: the same transaction,
        # answered as it was the first time.
        existing = Transaction.objects.get(**start.key)
        logger.info("Repeated StartTransaction answered with transaction %s", existing.pk)
        tag = IdTag.objects.filter(id_tag=start.id_tag).first()
        return StartResult(existing.pk, _id_tag_info(existing.id_tag_status, tag))


def start_transactions(starts: list[TransactionStart]) -> list[StartResult]:
    """Many StartTransactions at once: the tags looked up together, one INSERT.

    A retried StartTransaction collides with its unique constraint and fails the
    bulk INSERT; the batch is then redone one by one, where start_transaction()
    finds the first one's row.
    """
    looked_up = iter(
        authorize_many(
            [Authorization(s.id_tag, s.now) for s in starts if s.decided_id_tag_info is None], starting=True
        )
    )
    infos = [s.decided_id_tag_info if s.decided_id_tag_info is not None else next(looked_up) for s in starts]
    rows = Transaction.objects.bulk_create(
        [start.row(info["status"]) for start, info in zip(starts, infos, strict=True)]
    )
    if transaction_recorded.receivers:  # new rows only: a repeat failed the INSERT above
        for start, row in zip(starts, rows, strict=True):
            transaction_recorded.send(Transaction, transaction=row, event="started", request=start)
    return [StartResult(row.pk, info) for row, info in zip(rows, infos, strict=True)]


@dataclass
class StopResult:
    transaction: Transaction | None
    id_tag_info: dict[str, Any] | None
    #: "stopped"; "corrected" (a stop the server had guessed replaced by the charge
    #: point's); "rebuilt" (a transaction Levity never saw, rebuilt from the stop);
    #: "already_stopped" (the stored stop kept); "repeated" (a retry, nothing done).
    outcome: str


@dataclass(frozen=True)
class TransactionStop:
    """A StopTransaction, as stored."""

    charge_point_pk: int
    transaction_id: int
    meter_stop: int
    timestamp: datetime
    reason: str | None
    id_tag: str | None
    transaction_data: list[dict] | None
    now: datetime
    #: The idTagInfo a plugin decided (context.respond); None: look the tag up.
    decided_id_tag_info: dict[str, Any] | None = None


#: What a stop writes on its Transaction row.
STOP_FIELDS = (
    "stopped_by",
    "meter_stop",
    "stop_timestamp",
    "stop_reason",
    "stop_id_tag",
    "stop_received_at",
    "meter_stop_below_start",
    "stop_before_start",
    "energy_wh",
)


def stop_transactions(stops: list[TransactionStop]) -> list[StopResult]:
    """Stop transactions; never overwrite a charge point's stored stop, never drop meter values.

    One query for the transactions, one for the tags, one UPDATE for the stopped
    ones, one INSERT for their transactionData. A stop the server guessed (an
    orphan it closed) gives way to the charge point's own, and is kept as a
    SupersededStop. A stop for a transaction Levity never saw start rebuilds it
    from what the stop carries (``rebuilt``), so that it is not lost.
    """
    txs = {
        tx.pk: tx
        for tx in Transaction.objects.select_for_update().filter(pk__in={s.transaction_id for s in stops})
    }
    unknown = {
        (s.charge_point_pk, s.transaction_id)
        for s in stops
        if (tx := txs.get(s.transaction_id)) is None or tx.charge_point_id != s.charge_point_pk
    }
    rebuilt = {}
    if unknown:
        rebuilt = {
            (tx.charge_point_id, tx.reported_transaction_id): tx
            for tx in Transaction.objects.select_for_update().filter(
                charge_point_id__in={pk for pk, _ in unknown},
                reported_transaction_id__in={tx_id for _, tx_id in unknown},
            )
        }
    to_authorize = [s for s in stops if s.id_tag and s.decided_id_tag_info is None]
    looked_up = iter(
        authorize_many(
            [Authorization(s.id_tag, s.now, check_concurrent=False) for s in to_authorize if s.id_tag]
        )
    )
    results: list[StopResult] = []
    stopped: dict[int, Transaction] = {}
    superseded: list[SupersededStop] = []
    #: The charge point's first stop of each transaction (a server's stop posts nothing).
    first_stops: list[tuple[Transaction, TransactionStop]] = []
    meter_values: list[dict] = []
    for stop in stops:
        info: dict[str, Any] | None
        if stop.decided_id_tag_info is not None:
            info = stop.decided_id_tag_info
        else:
            info = next(looked_up) if stop.id_tag else None
        key = (stop.charge_point_pk, stop.transaction_id)
        if key in unknown:
            tx = rebuilt.get(key)
            if tx is None:
                tx = rebuilt[key] = _rebuild(stop, info)
                results.append(StopResult(tx, info, "rebuilt"))
                meter_values += _transaction_data_rows(stop, tx)
                continue
        else:
            tx = txs[stop.transaction_id]
        outcome = _apply_stop(stop, tx, superseded)
        if outcome in {"stopped", "corrected"}:
            stopped[tx.pk] = tx
            first_stops.append((tx, stop))
        if outcome != "repeated":
            meter_values += _transaction_data_rows(stop, tx)
        results.append(StopResult(tx, info, outcome))
    SupersededStop.objects.bulk_create(superseded)
    update_rows(Transaction, STOP_FIELDS, instance_rows(stopped.values(), STOP_FIELDS))
    # A resent transactionData stores nothing twice (the meter values' idempotency key).
    insert_rows(MeterValue, meter_values, ignore_conflicts=True)
    if transaction_recorded.receivers:
        for tx, stop in first_stops:
            transaction_recorded.send(Transaction, transaction=tx, event="stopped", request=stop)
    return results


def _transaction_data_rows(stop: TransactionStop, tx: Transaction) -> list[dict]:
    if not stop.transaction_data:
        return []
    return meter_value_rows(stop.charge_point_pk, tx.connector_id, tx.pk, stop.transaction_data, stop.now)


def _apply_stop(stop: TransactionStop, tx: Transaction, superseded: list[SupersededStop]) -> str:
    """Decide what the stop does to ``tx`` (and do it, in memory): the outcome.

    A server's stop found here is appended to ``superseded`` before it is replaced.
    """
    if tx.stop_timestamp is not None:
        if tx.stopped_by != StoppedBy.SERVER:
            if tx.stop_timestamp == stop.timestamp and tx.meter_stop == stop.meter_stop:
                logger.info("Repeated StopTransaction for transaction %s", tx.pk)
                return "repeated"
            logger.warning(
                "StopTransaction for transaction %s, already stopped at %s; stored stop kept",
                tx.pk,
                tx.stop_timestamp,
            )
            return "already_stopped"
        # The server closed it on its own authority; the charge point knows better.
        logger.warning(
            "StopTransaction for transaction %s replaces the server's stop (%s, %s Wh, %s); "
            "that stop is kept as superseded",
            tx.pk,
            tx.stop_timestamp,
            tx.meter_stop,
            tx.stop_reason,
        )
        superseded.append(
            SupersededStop(
                transaction=tx,
                stopped_by=tx.stopped_by,
                meter_stop=tx.meter_stop,
                stop_timestamp=tx.stop_timestamp,
                stop_reason=tx.stop_reason,
                energy_wh=tx.energy_wh,
                stop_received_at=tx.stop_received_at,
                superseded_at=stop.now,
            )
        )
        _record_stop(stop, tx)
        return "corrected"
    _record_stop(stop, tx)
    return "stopped"


def _record_stop(stop: TransactionStop, tx: Transaction) -> None:
    tx.meter_stop = stop.meter_stop
    tx.stop_timestamp = stop.timestamp
    tx.stop_reason = stop.reason or "Local"
    tx.stop_id_tag = stop.id_tag or ""
    tx.stop_received_at = stop.now
    tx.stopped_by = StoppedBy.CHARGE_POINT
    tx.stop_before_start = stop.timestamp < tx.start_timestamp
    if tx.stop_before_start:
        logger.warning(
            "Transaction %s: stop timestamp %s is before its start %s; stored as reported, flagged",
            tx.pk,
            stop.timestamp.isoformat(),
            tx.start_timestamp.isoformat(),
        )
    tx.meter_stop_below_start = stop.meter_stop < tx.meter_start
    if tx.meter_stop_below_start:
        logger.warning(
            "Transaction %s: meterStop %s is below meterStart %s; energy not stored",
            tx.pk,
            stop.meter_stop,
            tx.meter_start,
        )
        tx.energy_wh = None
    else:
        tx.energy_wh = stop.meter_stop - tx.meter_start


def _rebuild(stop: TransactionStop, info: dict[str, Any] | None) -> Transaction:
    """A stopped transaction from a StopTransaction whose start Levity never saw.

    It starts at the earliest timestamp the stop carries (its transactionData, or
    its own), with the earliest total energy register reading of its
    transactionData as meter start (without one, meterStop: no energy is claimed).
    Its connector is unknown (0). ``reported_transaction_id`` keeps the charge
    point's transactionId, so that a retried stop finds it.
    """
    samples = list(sampled_values(stop.transaction_data or []))
    registers = [
        sample
        for sample in samples
        if sample["measurand"] == DEFAULT_MEASURAND
        and sample["normalized_unit"] == "Wh"
        and sample["normalized_value"] is not None
        and not sample["phase"]
    ]
    first_reading = min(registers, key=itemgetter("timestamp"), default=None)
    tx = Transaction(
        charge_point_id=stop.charge_point_pk,
        connector_id=0,
        id_tag=stop.id_tag or "",
        id_tag_status=info["status"] if info else "",
        meter_start=round(first_reading["normalized_value"]) if first_reading else stop.meter_stop,
        start_timestamp=min([stop.timestamp, *(sample["timestamp"] for sample in samples)]),
        received_at=stop.now,
        rebuilt=True,
        reported_transaction_id=stop.transaction_id,
    )
    _record_stop(stop, tx)
    tx.save(force_insert=True)
    logger.warning(
        "StopTransaction for unknown transaction %s: recorded as rebuilt transaction %s",
        stop.transaction_id,
        tx.pk,
    )
    return tx


def close_transaction(tx: Transaction, *, meter_stop: int, reason: str, now: datetime) -> bool:
    """Close an active transaction on the server's authority (e.g. an orphan).

    Marked ``stopped_by=server``: the charge point's own StopTransaction, if it
    comes, replaces this stop (stop_transactions).
    """
    updated = Transaction.objects.filter(pk=tx.pk, stop_timestamp__isnull=True).update(
        meter_stop=meter_stop,
        stop_timestamp=now,
        stop_reason=reason,
        stop_received_at=now,
        energy_wh=max(meter_stop - tx.meter_start, 0),
        meter_stop_below_start=meter_stop < tx.meter_start,
        stop_before_start=now < tx.start_timestamp,
        stopped_by=StoppedBy.SERVER,
    )
    return bool(updated)


def meter_value_rows(
    charge_point_pk: int,
    connector_id: int,
    transaction_id: int | None,
    meter_values: list[dict],
    now: datetime,
    default_context: str = "Sample.Periodic",
) -> list[dict]:
    """MeterValue rows (``insert_rows`` dicts) for the snake_case meterValue list of a message."""
    common = {
        "charge_point_id": charge_point_pk,
        "connector_id": connector_id,
        "transaction_id": transaction_id,
        "received_at": now,
    }
    return [{**sample, **common} for sample in sampled_values(meter_values, default_context)]


def sampled_values(meter_values: list[dict], default_context: str = "Sample.Periodic"):
    """Each sampledValue with 1.6's defaults applied, as MeterValue field values."""
    for meter_value in meter_values:
        timestamp = parse_timestamp(meter_value["timestamp"])
        for sampled in meter_value.get("sampled_value", ()):
            measurand = sampled.get("measurand") or DEFAULT_MEASURAND
            unit = sampled.get("unit") or _default_unit(measurand)
            value = sampled["value"]
            fmt = sampled.get("format") or "Raw"
            normalized_value, normalized_unit = _normalize(value, unit, fmt)
            yield {
                "timestamp": timestamp,
                "value": value[:64],
                "measurand": measurand,
                "phase": sampled.get("phase") or "",
                "unit": unit,
                "context": sampled.get("context") or default_context,
                "location": sampled.get("location") or "Outlet",
                "format": fmt,
                "normalized_value": normalized_value,
                "normalized_unit": normalized_unit,
            }


@lru_cache(maxsize=256)
def _default_unit(measurand: str) -> str:
    for prefix, unit in DEFAULT_UNITS.items():
        if measurand.startswith(prefix):
            return unit
    return "Wh"


def _normalize(value: str, unit: str, fmt: str) -> tuple[float | None, str]:
    if fmt != "Raw":
        return None, ""
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None, ""
    normalized_unit, factor = NORMALIZED_UNITS.get(unit, (unit, 1))
    return float(number * factor), normalized_unit


# --- MeterValues from many sessions at once ---------------------------------------------


@dataclass(frozen=True)
class MeterValuesRequest:
    """One MeterValues message (snake_case meterValue list) waiting to be stored."""

    charge_point_pk: int
    connector_id: int
    transaction_id: int | None
    meter_value: list[dict]
    now: datetime


def record_meter_values_batch(requests: list[MeterValuesRequest]) -> list[int | Exception]:
    """Store the sampled values of many MeterValues messages: one query, one INSERT.

    Returns, per request, the number of rows stored or the exception that request
    alone raised.
    """
    wanted = {r.transaction_id for r in requests if r.transaction_id is not None}
    owners = {}
    if wanted:
        owners = dict(
            Transaction.objects.filter(pk__in=wanted).order_by().values_list("pk", "charge_point_id")
        )
    results: list[int | Exception] = []
    rows: list[dict] = []
    for request in requests:
        try:
            tx_id = request.transaction_id
            if tx_id is not None and owners.get(tx_id) != request.charge_point_pk:
                logger.warning("MeterValues name unknown transaction %s; stored without a transaction", tx_id)
                tx_id = None
            own = meter_value_rows(
                request.charge_point_pk, request.connector_id, tx_id, request.meter_value, request.now
            )
        except Exception as exc:  # e.g. a timestamp that is not one: this message only
            results.append(exc)
            continue
        results.append(len(own))
        rows += own
    # If the database refuses the INSERT, the writer redoes each message alone. A resent
    # MeterValues stores nothing twice (the meter values' idempotency key).
    insert_rows(MeterValue, rows, ignore_conflicts=True)
    return results
