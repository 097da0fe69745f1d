from django.urls import re_path
from rest_framework.routers import SimpleRouter

from . import security, views

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
    re_path(
        r"^charge-points/(?P<charge_point_id>[^/]+)/accept/?$",
        security.AcceptView.as_view(),
        name="charge-point-accept",
    ),
    re_path(
        r"^charge-points/(?P<charge_point_id>[^/]+)/security-profile/?$",
        security.SecurityProfileView.as_view(),
        name="charge-point-security-profile",
    ),
    re_path(
        r"^charge-points/(?P<charge_point_id>[^/]+)/password/?$",
        security.PasswordView.as_view(),
        name="charge-point-password",
    ),
    re_path(
        r"^charge-points/(?P<charge_point_id>[^/]+)/password-rotation/?$",
        security.PasswordRotationView.as_view(),
        name="charge-point-password-rotation",
    ),
    *router.urls,
]
