"""Serving the metrics: the metrics port, and the /metrics view on the main port (with a token).

With one daphne process the metrics are prometheus_client's default REGISTRY
(django-prometheus's), to which the database-state collector is added. With
several, set PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode): each
process writes its counters and histograms there, and any process's /metrics sums
them all, plus the database state, which is the same from every process. So one
scrape of any process, or of the address in front of them, covers the whole server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from .collectors import state_collector, submit_to_metrics_thread
from .conf import multiprocess_dir

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def registry() -> CollectorRegistry:
    if not multiprocess_dir():
        return REGISTRY
    shared = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(shared, path=multiprocess_dir())
    shared.register(state_collector)
    return shared


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics with ``Authorization: Bearer <LEVITY_METRICS_TOKEN>``: rendered on the
    metrics thread, off the event loop."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.LEVITY_METRICS_TOKEN
    if not (
        expected and scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), expected.encode())
    ):
        response = HttpResponse(
            "The metrics need the metrics token.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = await asyncio.wrap_future(submit_to_metrics_thread(encoder, registry()))
    return HttpResponse(body, content_type=content_type)


_metrics_port_started = False


def serve_metrics_port() -> None:
    """Listen on LEVITY_METRICS_PORT (once per process) when it is set."""
    global _metrics_port_started
    port = settings.LEVITY_METRICS_PORT
    if not port or _metrics_port_started:
        return
    _metrics_port_started = True
    try:
        start_http_server(port, addr=settings.LEVITY_METRICS_ADDRESS, registry=registry())
    except OSError as exc:
        if multiprocess_dir():
            # Another daphne process of this server holds the port; it serves the
            # same, whole-server metrics.
            logger.info("Metrics port %s is served by another process (%s)", port, exc)
        else:
            logger.error("Cannot serve metrics on port %s: %s", port, exc)
        return
    logger.info("Serving /metrics on %s:%s", settings.LEVITY_METRICS_ADDRESS, port)
