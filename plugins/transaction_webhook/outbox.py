"""Writing notifications to the outbox, and the database side of their delivery.

A connected charge point's ``TransactionNotificationPlugin`` instances register
their endpoint here (``register``). ``record`` -- connected to
``transactions.signals.transaction_recorded`` -- then adds one ``OutboxDelivery`` row
per endpoint inside the database transaction that writes the start or stop. The
delivery worker (``delivery``) takes due rows with ``claim`` and reports each
attempt with ``attempted``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction as db_transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from transactions.services import TransactionStart, TransactionStop
from transactions.signals import transaction_recorded

from .models import DeliveryState, OutboxDelivery

#: Seconds a claimed row stays with the process that claimed it, beyond its timeout:
#: should that process die mid-POST, the row is due again after this.
CLAIM_MARGIN = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where and how one plugin instance delivers."""

    webhook_url: str
    timeout: float
    max_attempts: int | None
    retry_delay: float
    retry_delay_max: float


_lock = threading.Lock()
#: charge point pk -> (its id, {plugin instance id: endpoint})
_endpoints: dict[int, tuple[str, dict[int, Endpoint]]] = {}


def register(charge_point_pk: int, charge_point_id: str, owner: object, endpoint: Endpoint) -> None:
    """Write the notifications of this charge point's transactions for ``owner`` (until unregistered)."""
    # Connected on first use: where no plugin delivers, transaction_recorded stays
    # without receivers and the data layer sends nothing.
    transaction_recorded.connect(record, dispatch_uid="levity.transaction_webhook.record")
    with _lock:
        _, owned = _endpoints.get(charge_point_pk, (charge_point_id, {}))
        _endpoints[charge_point_pk] = (charge_point_id, {**owned, id(owner): endpoint})


def unregister(charge_point_pk: int, owner: object) -> None:
    with _lock:
        charge_point_id, owned = _endpoints.get(charge_point_pk, ("", {}))
        owned = {key: value for key, value in owned.items() if key != id(owner)}
        if owned:
            _endpoints[charge_point_pk] = (charge_point_id, owned)
        else:
            _endpoints.pop(charge_point_pk, None)


def payload(event: str, charge_point_id: str, request: Any, transaction_id: int) -> dict[str, Any]:
    """The JSON body of a notification (the specification's fields)."""
    if event == "started":
        start: TransactionStart = request
        return {
            "event": "transaction_start",
            "charge_point_id": charge_point_id,
            "connector_id": start.connector_id,
            "id_tag": start.id_tag,
            "meter_start": start.meter_start,
            "transaction_id": transaction_id,
        }
    stop: TransactionStop = request
    return {
        "event": "transaction_stop",
        "charge_point_id": charge_point_id,
        "transaction_id": transaction_id,
        "meter_stop": stop.meter_stop,
        "reason": stop.reason or "",
    }


def record(sender: Any, transaction: Any, event: str, request: Any, **kwargs: Any) -> None:
    """Add the notification of a start or stop to the outbox, in the same database transaction."""
    registered = _endpoints.get(transaction.charge_point_id)
    if registered is None:
        return
    charge_point_id, endpoints = registered
    body = payload(event, charge_point_id, request, transaction.pk)
    now = timezone.now()
    OutboxDelivery.objects.bulk_create(
        [
            OutboxDelivery(
                transaction_id=transaction.pk,
                event=body["event"],
                webhook_url=endpoint.webhook_url,
                payload=body,
                idempotency_key=f"{transaction.pk}:{body['event']}",
                next_attempt_at=now,
                created_at=now,
                timeout=endpoint.timeout,
                max_attempts=endpoint.max_attempts,
                retry_delay=endpoint.retry_delay,
                retry_delay_max=endpoint.retry_delay_max,
            )
            # One per URL: two plugins posting to one webhook would post everything twice.
            for endpoint in {e.webhook_url: e for e in endpoints.values()}.values()
        ]
    )
    from .delivery import wake

    db_transaction.on_commit(wake)


def claim(limit: int = 50, now: datetime | None = None) -> list[OutboxDelivery]:
    """Due rows this process may post now, oldest first; at most one per transaction and URL.

    A row waits while an earlier row of its transaction and URL is not delivered (a
    stop never overtakes its start). Claimed rows are leased (``next_attempt_at``
    moved past their timeout) so that no other process takes them meanwhile; on
    PostgreSQL rows another process is claiming are skipped, not waited for.
    """
    now = now or timezone.now()
    earlier = OutboxDelivery.objects.filter(
        transaction=OuterRef("transaction"), webhook_url=OuterRef("webhook_url"), id__lt=OuterRef("id")
    ).exclude(state=DeliveryState.DELIVERED)
    with db_transaction.atomic():
        due = (
            OutboxDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .exclude(Exists(earlier))
            .order_by("id")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        rows = list(due[:limit])
        for row in rows:
            row.next_attempt_at = now + timedelta(seconds=row.timeout + CLAIM_MARGIN)
        OutboxDelivery.objects.bulk_update(rows, ["next_attempt_at"])
    return rows


def attempted(row: OutboxDelivery, error: str | None, now: datetime | None = None) -> None:
    """Record one POST of ``row``: delivered (``error`` None), or when to retry, or failed."""
    now = now or timezone.now()
    row.attempts += 1
    if error is None:
        row.state, row.delivered_at, row.last_error = DeliveryState.DELIVERED, now, ""
    else:
        row.last_error = error[:2000]
        if row.max_attempts is not None and row.attempts >= row.max_attempts:
            row.state = DeliveryState.FAILED
        else:
            row.next_attempt_at = now + timedelta(seconds=retry_delay(row))
    OutboxDelivery.objects.filter(pk=row.pk).update(
        attempts=row.attempts,
        state=row.state,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
    )


def retry_delay(row: OutboxDelivery) -> float:
    """Exponential backoff with jitter: half the capped delay, plus up to as much again at random."""
    delay = min(row.retry_delay * 2 ** max(row.attempts - 1, 0), row.retry_delay_max)
    return delay / 2 + random.uniform(0, delay / 2)


def retry_now(rows) -> int:
    """Make deliveries not yet delivered due now (failed ones pending again)."""
    return rows.exclude(state=DeliveryState.DELIVERED).update(
        state=DeliveryState.PENDING, next_attempt_at=timezone.now()
    )


def next_due() -> datetime | None:
    """When the earliest pending row is due (None: none is pending)."""
    return (
        OutboxDelivery.objects.filter(state=DeliveryState.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
