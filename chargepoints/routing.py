from django.urls import re_path

from .session.consumer import OCPPConsumer

websocket_urlpatterns = [
    # Any path under ocpp/ reaches the consumer, which validates the id, so that a
    # bad id (even one with an encoded "/") gets a clear refusal, not a routing error.
    re_path(r"^ocpp/(?P<charge_point_id>.*?)/?$", OCPPConsumer.as_asgi()),
]
