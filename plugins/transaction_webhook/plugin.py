"""POST a JSON notification when a transaction starts or stops (docs/plugins.md's example).

Delivered through an outbox (``outbox``, ``delivery``): the notification is a row
written in the database transaction that records the start or stop, and a worker
of the server process posts it -- at least once, with an idempotency key, in order
per transaction, retried with backoff until the webhook answers 2xx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from plugins.base import ChargePointPlugin

from . import delivery, outbox

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint


class TransactionNotificationPlugin(ChargePointPlugin):
    """Send webhook notifications when transactions start/stop.

    The charge point's answer never waits for the webhook, and neither a failing
    webhook nor a disconnect loses a notification: see ``docs/plugins.md``.
    """

    def __init__(
        self,
        webhook_url: str,
        timeout: float = 10.0,
        max_attempts: int | None = None,
        retry_delay: float = 1.0,
        retry_delay_max: float = 300.0,
    ) -> None:
        super().__init__()
        if not isinstance(webhook_url, str) or urlsplit(webhook_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError(f"webhook_url must be an http:// or https:// URL, got {webhook_url!r}")
        if len(webhook_url) > 2000:
            raise ValueError("webhook_url must be at most 2000 characters")
        for name, value in (
            ("timeout", timeout),
            ("retry_delay", retry_delay),
            ("retry_delay_max", retry_delay_max),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be a positive integer or null, got {max_attempts!r}")
        self.webhook_url = webhook_url
        self.timeout = float(timeout)
        self.endpoint = outbox.Endpoint(
            webhook_url, float(timeout), max_attempts, float(retry_delay), float(retry_delay_max)
        )

    async def initialize(self, charge_point: LevityChargePoint) -> None:
        """From now on, this charge point's starts and stops are written to the outbox."""
        assert charge_point.charge_point_pk is not None  # plugins start once the row is known
        outbox.register(charge_point.charge_point_pk, charge_point.id, self, self.endpoint)
        delivery.ensure_started()

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        # A start or stop of this session may be in the batch being written: once the
        # write path's next batch is done, it is committed (with its outbox row).
        try:
            await charge_point.cp_repo.run(_written)
        finally:
            outbox.unregister(charge_point.charge_point_pk, self)  # type: ignore[arg-type]  # registered with it


def _written() -> None:
    """Nothing: awaited through the write path, it returns after the batch before it."""
