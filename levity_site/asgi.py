"""ASGI entry point: HTTP goes to Django, WebSocket to the OCPP consumer.

The OCPP route is deliberately not wrapped in AllowedHostsOriginValidator:
charge points send no Origin header.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "levity_site.settings")

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as exc:
    # A malformed setting stops daphne with one line naming it, not a traceback.
    raise SystemExit(f"Levity configuration error: {exc}") from None

from channels.routing import ProtocolTypeRouter, URLRouter

from chargepoints.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

from channels.layers import get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from plugins.signals import server_started  # noqa: E402

# Load now what Django and Channels would otherwise load on first use: the URLconf
# with DRF, drf-spectacular and the PostgreSQL field modules they pull in, and the
# channel layer with redis-py. Lazily, the first API request and the first charge
# point waited for them; loaded here, they are frozen below.
get_resolver().url_patterns  # noqa: B018  (loads the URLconf)
get_channel_layer()

from chargepoints.ocpp16.protocol import compile_validators  # noqa: E402
from chargepoints.ocpp16.session import LevityChargePoint  # noqa: E402
from chargepoints.session import processes  # noqa: E402
from chargepoints.session.transport import defer_autobahn_debug_formatting  # noqa: E402
from levity_site.connections import close_connections_after_requests  # noqa: E402
from levity_site.sqlite import start_checkpointer  # noqa: E402

defer_autobahn_debug_formatting()
close_connections_after_requests()
compile_validators(LevityChargePoint.answered_actions(), lenient=settings.LEVITY_OCPP_LENIENT)
start_checkpointer()
processes.start()

# Only a server process imports this module: start process-wide services (e.g. the
# metrics port) here, never in manage.py commands.
server_started.send(sender=application)

# Everything loaded so far (Django, the apps, their modules and caches) lives as long
# as the process. Freezing it keeps it out of the garbage collector's full
# collections, which otherwise rescan it all and stall every connection (at 1,000
# charge points, the heartbeat p99 was mostly such pauses; bench/results/
# measurements.md). The thresholds keep what the connections allocate from here on
# out of those full collections too (see the setting).
gc.freeze()
gc.set_threshold(*settings.LEVITY_GC_THRESHOLDS)
