"""POST a JSON notification when a transaction starts or stops (docs/plugins.md's example)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from plugins.base import ChargePointPlugin, PluginContext, PluginHook

if TYPE_CHECKING:
    from chargepoints.ocpp16.session import LevityChargePoint


class TransactionNotificationPlugin(ChargePointPlugin):
    """Send webhook notifications when transactions start/stop.

    Runs in AFTER hooks, so the charge point has its answer before the webhook is
    called; a slow or failing webhook is logged and delays nothing.
    """

    def __init__(self, webhook_url: str, timeout: float = 10.0) -> None:
        super().__init__()
        if not isinstance(webhook_url, str) or urlsplit(webhook_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError(f"webhook_url must be an http:// or https:// URL, got {webhook_url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.webhook_url = webhook_url
        self.timeout = float(timeout)
        self._session: aiohttp.ClientSession | None = None

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.AFTER_START_TRANSACTION: "on_transaction_start",
            PluginHook.AFTER_STOP_TRANSACTION: "on_transaction_stop",
        }

    async def on_transaction_start(self, context: PluginContext) -> None:
        """Notify when a transaction starts."""
        await self._post(
            {
                "event": "transaction_start",
                "charge_point_id": context.charge_point.id,
                "connector_id": context.message_data.get("connector_id"),
                "id_tag": context.message_data.get("id_tag"),
                "meter_start": context.message_data.get("meter_start"),
                "transaction_id": context.result.transaction_id,
            }
        )

    async def on_transaction_stop(self, context: PluginContext) -> None:
        """Notify when a transaction stops."""
        await self._post(
            {
                "event": "transaction_stop",
                "charge_point_id": context.charge_point.id,
                "transaction_id": context.message_data.get("transaction_id"),
                "meter_stop": context.message_data.get("meter_stop"),
                "reason": context.message_data.get("reason", ""),
            }
        )

    async def _post(self, data: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.webhook_url, json=data) as response:
                if response.status >= 400:
                    self.logger.error(
                        "Webhook answered %s to %s notification for tx %s",
                        response.status,
                        data["event"],
                        data["transaction_id"],
                    )
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.logger.error(
                "Failed to send %s notification for tx %s: %s",
                data["event"],
                data["transaction_id"],
                exc or type(exc).__name__,
            )
            return
        self.logger.info("Sent %s notification for tx %s", data["event"], data["transaction_id"])

    async def cleanup(self, charge_point: LevityChargePoint) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
