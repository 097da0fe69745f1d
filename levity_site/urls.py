from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from levity_site import health

admin.site.site_header = "Levity Central System"
admin.site.site_title = "Levity"
admin.site.index_title = "Charging network"

api_v1 = [
    path("", include("chargepoints.api.urls")),
    path("", include("transactions.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-v1:schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api-v1"))),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

if apps.is_installed("plugins.prometheus_metrics"):
    # /metrics, when the metrics are on (docs/observability.md).
    urlpatterns.append(path("", include("plugins.prometheus_metrics.urls")))

# Errors Django answers itself (outside a view, or raised past one) are JSON under /api/.
handler400 = "chargepoints.api.errors.bad_request"
handler403 = "chargepoints.api.errors.permission_denied"
handler404 = "chargepoints.api.errors.page_not_found"
handler500 = "chargepoints.api.errors.server_error"
