"""Async repositories for plugins (`charge_point.cp_repo`, `charge_point.conn_repo`).

A repository writes through ``run`` (``run(func, *args)`` runs the synchronous
``func`` atomically and returns its result): the session gives its repositories
the OCPP write path; one made without ``run`` uses a thread of asgiref's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async

from .models import ChargePoint, Connector

Run = Callable[..., Awaitable[Any]]


async def run_in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` through channels' ``database_sync_to_async``."""
    return await database_sync_to_async(func)(*args, **kwargs)


class ChargePointRepository:
    def __init__(self, run: Run = run_in_thread) -> None:
        self.run = run

    async def get_by_id(self, charge_point_id: str) -> ChargePoint | None:
        return await ChargePoint.objects.filter(charge_point_id=charge_point_id).afirst()

    async def update_status(self, charge_point_id: str, status: str) -> bool:
        """Set the status of the charge point as a whole (connector 0)."""
        return await self.run(_update_status, charge_point_id, status)


def _update_status(charge_point_id: str, status: str) -> bool:
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
    if charge_point is None:
        return False
    Connector.objects.update_or_create(charge_point=charge_point, connector_id=0, defaults={"status": status})
    return True


class ConnectorRepository:
    async def get_by_cp_and_connector(self, charge_point_id: str, connector_id: int) -> Connector | None:
        return await Connector.objects.filter(
            charge_point__charge_point_id=charge_point_id, connector_id=connector_id
        ).afirst()

    async def list_for_charge_point(self, charge_point_id: str) -> list[Connector]:
        return [c async for c in Connector.objects.filter(charge_point__charge_point_id=charge_point_id)]
