from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.views import healthz

admin.site.site_header = "CRM Steward"
admin.site.site_title = "CRM Steward"
admin.site.index_title = "RevOps console"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("connections/", include("integrations.urls")),
    path("api/v1/", include("integrations.api.urls")),
    path("healthz", healthz, name="healthz"),
]
