"""Authorization, transactions and meter values: the database side of the OCPP session.

Each public function does one message's work in one database transaction and is
called from the session through a single hop to the database thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import Any

from django.db import IntegrityError, transaction

from chargepoints.db import insert_statement, instance_rows, update_rows
from chargepoints.ocpp16.protocol import format_timestamp, parse_timestamp

from .models import AuthorizationStatus, IdTag, MeterValue, StoppedBy, SupersededStop, Transaction

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


def authorize(id_tag: str, now: datetime, *, check_concurrent: bool = True) -> dict[str, Any]:
    """The idTagInfo (snake_case) for a tag, from the ID tag table."""
    return authorize_many([Authorization(id_tag, now, check_concurrent)])[0]


def authorize_many(authorizations: list[Authorization]) -> list[dict[str, Any]]:
    """idTagInfo for many Authorize messages at once: one query for the tags, one for
    those already charging."""
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
    to_check = {
        index
        for index, (a, s) in enumerate(zip(authorizations, statuses))
        if a.check_concurrent and s == AuthorizationStatus.ACCEPTED
    }
    if to_check:
        charging = set(
            Transaction.objects.active()
            .filter(id_tag__in={authorizations[index].id_tag for index in to_check})
            .values_list("id_tag", flat=True)
        )
        for index in to_check:
            if authorizations[index].id_tag in charging:
                statuses[index] = AuthorizationStatus.CONCURRENT_TX
    return [_id_tag_info(s, tags.get(a.id_tag)) for a, s in zip(authorizations, statuses)]


@dataclass
class StartResult:
    transaction_id: int
    id_tag_info: dict[str, Any]
    duplicate: bool = False


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
    with transaction.atomic():
        info = start.decided_id_tag_info or authorize(start.id_tag, start.now)
        try:
            with transaction.atomic():
                tx = start.row(info["status"])
                tx.save(force_insert=True)
        except IntegrityError:
            # A retry (its answer was lost) or a concurrent twin: the same transaction,
            # answered as it was the first time.
            existing = Transaction.objects.get(**start.key)
            logger.info("Repeated StartTransaction answered with transaction %s", existing.pk)
            tag = IdTag.objects.filter(id_tag=start.id_tag).first()
            return StartResult(existing.pk, _id_tag_info(existing.id_tag_status, tag), True)
    return StartResult(tx.pk, info)


def start_transactions(starts: list[TransactionStart]) -> list[StartResult]:
    """Many StartTransactions at once: the tags looked up together, one INSERT.

    A retried StartTransaction collides with its unique constraint and fails the
    bulk INSERT; the batch is then redone one by one (chargepoints.session.writer.BulkWrite),
    where start_transaction() finds the first one's row.
    """
    looked_up = iter(
        authorize_many([Authorization(s.id_tag, s.now) for s in starts if s.decided_id_tag_info is None])
    )
    infos = [s.decided_id_tag_info if s.decided_id_tag_info is not None else next(looked_up) for s in starts]
    # Two charge points starting with one tag in the same batch: as if one after the
    # other, the second is told the tag is already charging.
    accepted: set[str] = set()
    for index, (start, info) in enumerate(zip(starts, infos)):
        if start.decided_id_tag_info is None and info["status"] == AuthorizationStatus.ACCEPTED:
            if start.id_tag in accepted:
                infos[index] = {**info, "status": AuthorizationStatus.CONCURRENT_TX}
            accepted.add(start.id_tag)
    rows = Transaction.objects.bulk_create(
        [start.row(info["status"]) for start, info in zip(starts, infos)]
    )
    return [StartResult(row.pk, info) for row, info in zip(rows, infos)]


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
        authorize_many([Authorization(s.id_tag, s.now, check_concurrent=False) for s in to_authorize])
    )
    results: list[StopResult] = []
    stopped: dict[int, Transaction] = {}
    superseded: list[SupersededStop] = []
    meter_values: list[MeterValue] = []
    for stop in stops:
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
        if outcome != "repeated":
            meter_values += _transaction_data_rows(stop, tx)
        results.append(StopResult(tx, info, outcome))
    SupersededStop.objects.bulk_create(superseded)
    update_rows(Transaction, STOP_FIELDS, instance_rows(stopped.values(), STOP_FIELDS))
    # A resent transactionData stores nothing twice (the meter values' idempotency key).
    MeterValue.objects.bulk_create(meter_values, ignore_conflicts=True)
    return results


def _transaction_data_rows(stop: TransactionStop, tx: Transaction) -> list[MeterValue]:
    if not stop.transaction_data:
        return []
    return meter_value_rows(stop.charge_point_pk, tx.connector_id, tx, stop.transaction_data, stop.now)


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
        stopped_by=StoppedBy.SERVER,
    )
    return bool(updated)


def meter_value_rows(
    charge_point_pk: int,
    connector_id: int,
    tx: Transaction | None,
    meter_values: list[dict],
    now: datetime,
    default_context: str = "Sample.Periodic",
) -> list[MeterValue]:
    """MeterValue rows (unsaved) for the snake_case meterValue list of a message."""
    return [
        MeterValue(
            charge_point_id=charge_point_pk,
            connector_id=connector_id,
            transaction=tx,
            received_at=now,
            **sample,
        )
        for sample in sampled_values(meter_values, default_context)
    ]


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


# --- MeterValues from many sessions at once (chargepoints.session.writer.BulkWrite) ------


@dataclass(frozen=True)
class MeterValuesRequest:
    """One MeterValues message (snake_case meterValue list) waiting to be stored."""

    charge_point_pk: int
    connector_id: int
    transaction_id: int | None
    meter_value: list[dict]
    now: datetime


def record_meter_values_batch(requests: list[MeterValuesRequest]) -> list[int | Exception]:
    """Store the sampled values of many MeterValues messages: one query, one INSERT, one commit.

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
    per_request: list[list[tuple]] = []
    for request in requests:
        try:
            tx_id = request.transaction_id
            if tx_id is not None and owners.get(tx_id) != request.charge_point_pk:
                logger.warning(
                    "MeterValues name unknown transaction %s; stored without a transaction", tx_id
                )
                tx_id = None
            params = _insert_params(
                {
                    "charge_point_id": request.charge_point_pk,
                    "connector_id": request.connector_id,
                    "transaction_id": tx_id,
                    "received_at": request.now,
                },
                sampled_values(request.meter_value),
            )
        except Exception as exc:  # e.g. a timestamp that is not one: this message only
            results.append(exc)
            per_request.append([])
            continue
        results.append(len(params))
        per_request.append(params)
    # If the database refuses the INSERT, BulkWrite redoes each message alone.
    _insert_meter_values([p for params in per_request for p in params])
    return results


@lru_cache(maxsize=None)
def _meter_value_columns(vendor: str) -> tuple[Callable[[dict], tuple], frozenset[str], str]:
    """A row's values in column order (from a dict by attname), the datetime
    attnames, and the INSERT statement.

    The INSERT skips a row whose idempotency key (MeterValue's unique constraints)
    is already stored: a resent MeterValues stores nothing twice. ``ON CONFLICT DO
    NOTHING`` is the same in SQLite and PostgreSQL, and (unlike SQLite's ``INSERT
    OR IGNORE``) ignores only uniqueness conflicts.
    """
    from django.db import connection

    fields, sql = insert_statement(MeterValue, connection)
    sql += " ON CONFLICT DO NOTHING"
    datetimes = frozenset(f.attname for f in fields if f.get_internal_type() == "DateTimeField")
    return itemgetter(*(f.attname for f in fields)), datetimes, sql


def _insert_params(common: dict, samples: Iterable[dict]) -> list[tuple]:
    """INSERT parameters in column order, datetimes adapted by the backend as bulk_create does.

    The other fields are already str, int, float or None, which need no adaptation.
    Each sample dict is completed in place (``sampled_values`` makes a new one each).
    """
    from django.db import connection

    row_values, datetimes, _ = _meter_value_columns(connection.vendor)
    adapt = connection.ops.adapt_datetimefield_value
    common = {k: adapt(v) if k in datetimes and v is not None else v for k, v in common.items()}
    adapted: dict = {}
    out = []
    sample_datetimes = None
    for sample in samples:
        if sample_datetimes is None:  # the same keys in every sample
            sample_datetimes = datetimes.intersection(sample)
        for attname in sample_datetimes:
            value = sample[attname]
            if value is not None:
                if value not in adapted:
                    adapted[value] = adapt(value)
                sample[attname] = adapted[value]
        sample.update(common)
        out.append(row_values(sample))
    return out


def _insert_meter_values(params: list[tuple]) -> None:
    """INSERT prepared rows with executemany: bulk_create's statement without its per-field compiler."""
    from django.db import connection

    if not params:
        return
    _, _, sql = _meter_value_columns(connection.vendor)
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
