"""The outbox deliveries in the admin: read-only, with an action to retry now."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chargepoints.models import ChargePoint
from plugins.transaction_webhook.models import DeliveryState, OutboxDelivery
from transactions.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/transaction_webhook/outboxdelivery/"
LATER = datetime.now(timezone.utc) + timedelta(hours=1)


@pytest.fixture
def rows() -> dict[str, OutboxDelivery]:
    cp = ChargePoint.objects.create(charge_point_id="CP-OUTBOX-ADMIN")
    tx = Transaction.objects.create(
        charge_point=cp, connector_id=1, id_tag="CARD-1", id_tag_status="Accepted",
        meter_start=0, start_timestamp=datetime(2025, 3, 1, tzinfo=timezone.utc),
    )  # fmt: skip

    def row(event: str, state: str, **fields) -> OutboxDelivery:
        return OutboxDelivery.objects.create(
            transaction=tx, event=event, webhook_url="http://127.0.0.1:9/hook", payload={"event": event},
            idempotency_key=f"{tx.pk}:{event}", state=state, timeout=10, retry_delay=1,
            retry_delay_max=300, next_attempt_at=LATER, **fields,
        )  # fmt: skip

    return {
        "failed": row("transaction_start", DeliveryState.FAILED, attempts=3, last_error="HTTP 503"),
        "delivered": row("transaction_stop", DeliveryState.DELIVERED, attempts=1),
    }


def test_the_list_shows_each_delivery_with_its_state_and_last_error(operator_client, rows):
    html = operator_client.get(LIST).content.decode()
    assert "HTTP 503" in html
    assert "failed" in html and "delivered" in html
    assert "http://127.0.0.1:9/hook" in html


def test_deliveries_are_read_only(operator_client, rows):
    row = rows["failed"]
    assert operator_client.get(f"{LIST}add/").status_code == 403
    response = operator_client.post(f"{LIST}{row.pk}/change/", {"state": "delivered"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.state == DeliveryState.FAILED


def test_retry_now_makes_undelivered_deliveries_due_now(operator_client, rows):
    response = operator_client.post(
        LIST,
        {"action": "retry_now", "_selected_action": [r.pk for r in rows.values()]},
        follow=True,
    )
    assert "1 deliveries will be retried now" in response.content.decode()
    failed, delivered = (OutboxDelivery.objects.get(pk=r.pk) for r in (rows["failed"], rows["delivered"]))
    assert failed.state == DeliveryState.PENDING and failed.next_attempt_at <= datetime.now(timezone.utc)
    assert (delivered.state, delivered.next_attempt_at) == (DeliveryState.DELIVERED, LATER)
