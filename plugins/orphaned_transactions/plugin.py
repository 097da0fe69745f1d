"""Close transactions that a charge point never stopped (power loss, lost messages)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError

from chargepoints.ocpp16 import protocol
from plugins.base import ChargePointPlugin, PluginContext, PluginHook

if TYPE_CHECKING:
    from transactions.models import Transaction

SCOPES = ("connector", "charge_point")


class OrphanedTransactionPlugin(ChargePointPlugin):
    """Before a StartTransaction, close the transactions it shows were never stopped.

    ``scope="connector"`` (default) closes the active transactions on the connector
    the new transaction starts on: a connector has one transaction at a time, so
    those are certainly orphaned. ``scope="charge_point"`` closes every active
    transaction of the charge point; choose it only for
    single-connector charge points or chargers known to lose all sessions at once,
    since on a multi-connector charger it also closes sessions still charging.

    An orphan is closed with meter_stop = its last Energy.Active.Import.Register
    reading (Wh) or, without one, its meter_start; reason ``Other``; stop time now.
    A retried StartTransaction (same connector, tag, meterStart and timestamp) refers
    to an existing transaction, which is left alone. The close is the server's
    (``stopped_by=server``): if the charge point's own StopTransaction arrives
    later, it replaces this stop, which is kept as a SupersededStop.
    """

    def __init__(self, scope: str = "connector") -> None:
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        self.scope = scope

    def hooks(self) -> dict[PluginHook, str]:
        return {PluginHook.BEFORE_START_TRANSACTION: "close_orphans"}

    async def close_orphans(self, context: PluginContext) -> None:
        data = context.message_data
        charge_point = context.charge_point
        try:
            retry_key = _start_key(
                data["connector_id"],
                data["id_tag"],
                data["meter_start"],
                protocol.parse_timestamp(data["timestamp"]),
            )
        except OCPPError:
            return  # the core refuses this StartTransaction itself
        connector_id = data["connector_id"] if self.scope == "connector" else None
        for tx in await charge_point.tx_repo.get_active(charge_point.id, connector_id):
            if _start_key(tx.connector_id, tx.id_tag, tx.meter_start, tx.start_timestamp) == retry_key:
                continue  # the transaction this retried StartTransaction started
            await self._close(charge_point, tx)

    async def _close(self, charge_point: Any, tx: Transaction) -> None:
        reading = await charge_point.meter_repo.get_last_energy_register(tx.pk)
        meter_stop = round(reading.normalized_value) if reading is not None else tx.meter_start
        closed = await charge_point.tx_repo.stop_transaction(
            tx.pk, meter_stop, reason="Other", timestamp=datetime.now(timezone.utc)
        )
        if closed:
            self.logger.warning(
                "%s/%s: closed orphaned transaction %s (meter_stop %s Wh, %s)",
                charge_point.id,
                tx.connector_id,
                tx.pk,
                meter_stop,
                "last meter reading" if reading is not None else "no meter reading: meter_start",
            )


def _start_key(connector_id: int, id_tag: str, meter_start: int, timestamp: datetime) -> tuple:
    return (connector_id, id_tag, meter_start, timestamp)
