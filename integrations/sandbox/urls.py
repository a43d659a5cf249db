"""The sandbox's own URL configuration (see integrations/sandbox/server.py).

HubSpot lives under /crm/ and /oauth/, Salesforce under /services/ (simple-salesforce
builds every URL from the bare host), the model emulator under /sandbox/openai/v1/.
"""

from django.urls import include, path

from integrations.sandbox import identity

urlpatterns = [
    path("account-info/v3/details", identity.hubspot_account_details),
    path("services/oauth2/userinfo", identity.salesforce_userinfo),
    path("", include("integrations.sandbox.hubspot.urls")),
    path("", include("integrations.sandbox.salesforce.urls")),
    path("", include("integrations.sandbox.openai.urls")),
]
