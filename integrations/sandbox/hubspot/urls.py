"""HubSpot's CRM v3/v4 and OAuth v1 paths, as hubspot-api-client calls them.

``{objectType}`` is a name (``deals``) or an id (``0-3``). The owners list is served with
and without the trailing slash the SDK puts on it. The install screen, /oauth/authorize,
lives on app.hubspot.com; the sandbox serves it on the same host as the API.
"""

from django.urls import path, re_path

from integrations.sandbox.hubspot import (
    associations,
    authorize,
    batch,
    metadata,
    oauth,
    objects,
    search,
)

V3 = "crm/v3/objects/<str:object_type>"
V4 = "crm/v4/objects/<str:object_type>/<str:object_id>/associations"

urlpatterns = [
    path(f"{V3}/batch/read", batch.batch_read),
    path(f"{V3}/batch/update", batch.batch_update),
    path(f"{V3}/batch/create", batch.batch_create),
    path(f"{V3}/search", search.search_objects),
    path(V3, objects.collection),
    path(f"{V3}/<str:object_id>", objects.item),
    path(f"{V4}/<str:to_object_type>", associations.list_associations),
    path(
        f"{V4}/default/<str:to_object_type>/<str:to_object_id>",
        associations.create_default,
    ),
    path(f"{V4}/<str:to_object_type>/<str:to_object_id>", associations.pair),
    path(
        "crm/v4/associations/<str:from_object_type>/<str:to_object_type>/batch/read",
        associations.batch_read,
    ),
    path("crm/v3/properties/<str:object_type>", metadata.list_properties),
    path("crm/v3/properties/<str:object_type>/<str:property_name>", metadata.get_property),
    re_path(r"^crm/v3/owners/?$", metadata.list_owners),
    path("crm/v3/owners/<str:owner_id>", metadata.get_owner),
    path("crm/v3/pipelines/<str:object_type>", metadata.list_pipelines),
    path("crm/v3/pipelines/<str:object_type>/<str:pipeline_id>", metadata.get_pipeline),
    path(
        "crm/v3/pipelines/<str:object_type>/<str:pipeline_id>/stages",
        metadata.list_stages,
    ),
    path("oauth/authorize", authorize.authorize),
    path("oauth/v1/token", oauth.create_token),
    path("oauth/v1/access-tokens/<str:token>", oauth.access_token_info),
    path("oauth/v1/refresh-tokens/<str:token>", oauth.refresh_tokens),
]
