from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from config.views import healthz
from crm_agents.api.urls import router as agents_api
from crm_agents.metrics import admin_index, metrics_view
from integrations.api.urls import router as integrations_api

# Django's own error pages, as JSON under /api/ (a client never parses an HTML page).
handler400 = "crm_agents.api.errors.bad_request"
handler403 = "crm_agents.api.errors.permission_denied"
handler404 = "crm_agents.api.errors.page_not_found"
handler500 = "crm_agents.api.errors.server_error"

admin.site.site_header = "CRM Steward"
admin.site.site_title = "CRM Steward"
admin.site.index_title = "RevOps console"

# One router for the whole API, so its root (/api/v1/) lists every resource.
api = DefaultRouter()
api.registry.extend([*integrations_api.registry, *agents_api.registry])

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # The admin index with its metrics section; every other admin page is the stock one.
    path("admin/", admin.site.admin_view(admin_index)),
    path("admin/", admin.site.urls),
    path("connections/", include("integrations.urls")),
    path("chat/", include("crm_agents.chat_urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/", include(api.urls)),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
]
