from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("transactions", views.TransactionViewSet, basename="transaction")
router.register("meter-values", views.MeterValueViewSet, basename="meter-value")

urlpatterns = router.urls
