"""How the OpenAPI schema (drf-spectacular) describes our authentication classes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
