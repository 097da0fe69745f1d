from django.urls import re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.trailing_slash = "/?"  # /api/v1/charge-points and /api/v1/charge-points/ both work
router.register("charge-points", views.ChargePointViewSet, basename="charge-point")
router.register("connectors", views.ConnectorViewSet, basename="connector")
router.register("commands", views.CommandViewSet, basename="command")
router.register("security-events", views.SecurityEventViewSet, basename="security-event")

urlpatterns = [
    re_path(
        r"^charge-points/(?P<charge_point_id>[^/]+)/commands/?$",
        views.ChargePointCommandView.as_view(),
        name="charge-point-commands",
    ),
    *router.urls,
]
