from django.apps import apps
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Levity Central System"
admin.site.site_title = "Levity"
admin.site.index_title = "Charging network"

urlpatterns = [
    path("admin/", admin.site.urls),
]

if apps.is_installed("plugins.prometheus_metrics"):
    # /metrics, when the metrics are on (docs/observability.md).
    urlpatterns.append(path("", include("plugins.prometheus_metrics.urls")))
