"""Async repositories for plugins (`charge_point.tx_repo`, `charge_point.meter_repo`).

Writes go through ``run``, as in chargepoints.repositories.
"""

from __future__ import annotations

from datetime import datetime, timezone

from chargepoints.repositories import Run, run_in_thread
from chargepoints.services import clock_skew_tolerance

from . import services
from .models import MeterValue, Transaction

ENERGY_REGISTER = "Energy.Active.Import.Register"


class TransactionRepository:
    def __init__(self, run: Run = run_in_thread) -> None:
        self.run = run

    async def get_by_id(self, transaction_id: int) -> Transaction | None:
        return await Transaction.objects.filter(pk=transaction_id).afirst()

    async def get_active(self, charge_point_id: str, connector_id: int | None = None) -> list[Transaction]:
        qs = Transaction.objects.active().filter(charge_point__charge_point_id=charge_point_id)
        if connector_id is not None:
            qs = qs.filter(connector_id=connector_id)
        return [tx async for tx in qs.order_by("start_timestamp")]

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        reason: str = "Other",
        timestamp: datetime | None = None,
    ) -> bool:
        """Close an active transaction on the server's authority; False if it was not active.

        The stop is the server's (``stopped_by=server``): the charge point's own
        StopTransaction, if it comes, replaces it.
        """
        tx = await self.get_by_id(transaction_id)
        if tx is None:
            return False
        return await self.run(
            services.close_transaction,
            tx,
            meter_stop=meter_stop,
            reason=reason,
            now=timestamp or datetime.now(timezone.utc),
        )


class MeterValueRepository:
    async def get_for_transaction(self, transaction_id: int) -> list[MeterValue]:
        return [mv async for mv in MeterValue.objects.filter(transaction_id=transaction_id)]

    async def get_last_for_transaction(
        self, transaction_id: int, measurand: str = ENERGY_REGISTER
    ) -> MeterValue | None:
        """The latest sample of a measurand (by the charge point's timestamp)."""
        return (
            await MeterValue.objects.filter(transaction_id=transaction_id, measurand=measurand)
            .order_by("-timestamp", "-id")
            .afirst()
        )

    async def get_last_energy_register(self, transaction_id: int) -> MeterValue | None:
        """The latest numeric Energy.Active.Import.Register reading in Wh (normalized_value).

        Among readings of the same time, the total (no phase) comes first. A reading
        dated further ahead of the server's clock than LEVITY_CLOCK_SKEW_TOLERANCE
        is not "the latest" for its date (docs/operations.md, "Data integrity
        rules"); only when there is no other does the last received of those count.
        """
        readings = MeterValue.objects.filter(
            transaction_id=transaction_id,
            measurand=ENERGY_REGISTER,
            normalized_unit="Wh",
            normalized_value__isnull=False,
        )
        cutoff = datetime.now(timezone.utc) + clock_skew_tolerance()
        latest = await readings.filter(timestamp__lte=cutoff).order_by("-timestamp", "phase", "-id").afirst()
        if latest is None:
            latest = await readings.order_by("-received_at", "phase", "-id").afirst()
        return latest
