from django.urls import re_path

from .consumers import OCPPConsumer

websocket_urlpatterns = [
    # The id is validated by the consumer so that a bad id gets a clear refusal.
    re_path(r"^ocpp/(?P<charge_point_id>[^/]*)/?$", OCPPConsumer.as_asgi()),
]
