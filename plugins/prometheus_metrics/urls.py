from django.conf import settings
from django.urls import path

from . import exports
from .conf import metrics_enabled

# On the main port -- the charge points' -- only behind LEVITY_METRICS_TOKEN: the
# metrics name every charge point and its energy. Otherwise only the metrics port serves them.
urlpatterns = (
    [path("metrics", exports.metrics_view, name="metrics")]
    if metrics_enabled() and settings.LEVITY_METRICS_TOKEN
    else []
)
