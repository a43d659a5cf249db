from rest_framework.routers import DefaultRouter

from integrations.api.views import ConnectionViewSet

router = DefaultRouter()
router.register("connections", ConnectionViewSet, basename="connection")
urlpatterns = router.urls
