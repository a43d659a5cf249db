"""How the OpenAPI schema (drf-spectacular) describes the API beyond what views declare:
our authentication classes, every list's filters (from the view set's ``list_filters``),
and the error answers each operation can give, with their JSON shapes.

Which errors an operation documents:
- 400 every operation (a bad query parameter or body), 401 and 429 every operation (all
  need credentials; failed ones are throttled, with ``Retry-After``);
- 403 operations that write, or whose view has permissions beyond signing in;
- 404 operations on one object (``{id}``), and creations that name a workspace;
- 413 and 415 operations that take a body;
- anything a view declares itself (409 for a decision the object's state no longer allows).
"""

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated

from crm_agents.api.errors import body_limit_label


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "crm_agents.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A workspace API key: `Api-Key <key>`. It acts with the RevOps "
            "role in its workspace.",
        }


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "crm_agents.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A person's API token: `Token <token>`. It has that person's roles.",
        }


# --- error bodies --------------------------------------------------------------------------
class ErrorSerializer(serializers.Serializer):
    """An error about the request as a whole."""

    detail = serializers.CharField()


class FieldErrorsSerializer(serializers.Serializer):
    """Bad values, each under its field's dotted path; or ``detail`` for the whole body."""


class FieldErrorsExtension(OpenApiSerializerExtension):
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema, direction) -> dict:
        return {
            "type": "object",
            "description": "Each bad value's messages under its dotted path "
            '(`{"attendees.1.email": ["…"]}`, `non_field_errors` for the body as a whole), '
            'or `{"detail": "…"}` when the request as a whole is refused.',
            "properties": {"detail": {"type": "string"}},
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }


def _error(description: str, serializer=ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(response=serializer, description=description)


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds until this client may try again.",
)


def _model_field(field: serializers.Field) -> models.Field | None:
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return None
    try:
        model_field = model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return None
    return model_field if isinstance(model_field, models.Field) else None  # not a reverse relation


class ApiAutoSchema(AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        # A ModelSerializer drops allow_blank from read-only fields, and a declared related
        # field knows nothing of its column: show what the column can hold ("" or null).
        model_field = _model_field(field) if field.read_only else None
        if model_field is not None:
            if model_field.blank and isinstance(
                field, serializers.CharField | serializers.ChoiceField
            ):
                field.allow_blank = True
            if model_field.null:
                field.allow_null = True
        return super()._map_serializer_field(field, direction, bypass_extensions)

    def get_override_parameters(self) -> list:
        parameters = [*super().get_override_parameters(), RETRY_AFTER]
        if self.method == "GET" and getattr(self.view, "action", None) == "list":
            filters = getattr(self.view, "list_filters", {})
            parameters += [spec.parameter(name) for name, spec in filters.items()]
        return parameters

    def _get_response_bodies(self, direction="response") -> dict:
        bodies = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if str(code) not in bodies:
                bodies[str(code)] = self._get_response_for_code(
                    response, str(code), None, direction
                )
        return dict(sorted(bodies.items()))

    def _error_responses(self) -> dict:
        errors = {
            400: _error("A bad query parameter or body value.", FieldErrorsSerializer),
            401: _error("No credentials, or a wrong, revoked or malformed key or token."),
            429: _error("Too many failed authentications from this client; see Retry-After."),
        }
        extra_permissions = any(
            not isinstance(permission, IsAuthenticated)
            for permission in self.view.get_permissions()
        )
        if self.method not in SAFE_METHODS or extra_permissions:
            errors[403] = _error("The caller's role or kind of credential may not do this.")
        if "{" in self.path or self._names_a_workspace():
            errors[404] = _error("No such object in the caller's workspaces.")
        if self._takes_body():
            errors[413] = _error(f"The body is over the {body_limit_label()} limit.")
            errors[415] = _error("The body is not JSON (send `Content-Type: application/json`).")
        return errors

    def _takes_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _names_a_workspace(self) -> bool:
        body = self.get_request_serializer()
        return self._takes_body() and "workspace" in getattr(body, "model_fields", {})
