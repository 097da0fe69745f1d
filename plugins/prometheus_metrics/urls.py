from django.urls import path

from . import exports
from .conf import metrics_enabled

urlpatterns = [path("metrics", exports.metrics_view, name="metrics")] if metrics_enabled() else []
