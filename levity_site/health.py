"""Health endpoints for load balancers and orchestrators.

- ``/healthz``: the process is alive and its event loop answers. It touches nothing
  else, so a database outage does not make an orchestrator restart every process.
- ``/readyz``: the process can do its work: a query reaches the database and a
  message makes a round trip through the channel layer (Redis with ``REDIS_URL``),
  each within ``LEVITY_READY_TIMEOUT`` seconds. 200 when both do, 503 otherwise;
  the JSON body says which failed and why.

Neither needs authentication, and neither says more than "ok" or the error's type
and message.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


@never_cache
async def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _query_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's connection (back to the pool, on PostgreSQL)


async def _round_trip_channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("levity-readyz.")
    await layer.send(channel, {"type": "levity.readyz"})
    message = await layer.receive(channel)
    if message.get("type") != "levity.readyz":
        raise RuntimeError(f"the channel layer returned {message!r}")


async def _check(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), settings.LEVITY_READY_TIMEOUT)
    except TimeoutError:
        logger.warning("/readyz: the %s did not answer within %s s", name, settings.LEVITY_READY_TIMEOUT)
        return f"no answer within {settings.LEVITY_READY_TIMEOUT:g} s"
    except Exception as exc:
        logger.warning("/readyz: the %s is not reachable: %r", name, exc)
        return f"{type(exc).__name__}: {exc}".strip()
    return "ok"


@never_cache
async def readyz(request) -> JsonResponse:
    # thread_sensitive=False: a hung database holds a thread of its own, not the
    # thread the other requests of this process share.
    database, channel_layer = await asyncio.gather(
        _check("database", sync_to_async(_query_database, thread_sensitive=False)),
        _check("channel layer", _round_trip_channel_layer),
    )
    checks = {"database": database, "channel_layer": channel_layer}
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
