"""The OpenAPI schema describes the API, and its UIs are served without a CDN."""

import json

import pytest

pytestmark = pytest.mark.django_db


def test_it_serves_an_openapi_3_schema(api_as, rep):
    response = api_as(rep).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    submit = schema["paths"]["/api/v1/calls/"]["post"]
    assert submit["responses"].keys() >= {"202", "200"}
    assert "/api/v1/proposals/{id}/decide/" in schema["paths"]
    assert "/api/v1/workflows/{id}/test/" in schema["paths"]
    assert {"apiKey", "apiToken"} <= schema["components"]["securitySchemes"].keys()


def test_it_serves_yaml_too(api_as, rep):
    response = api_as(rep).get("/api/v1/schema/")

    assert response.status_code == 200
    assert b"/api/v1/calls/:" in response.content


def test_the_schema_is_for_signed_in_callers(api_as):
    assert api_as().get("/api/v1/schema/").status_code == 401


def test_the_swagger_ui_loads_its_files_locally(api_as, rep):
    page = api_as(rep).get("/api/v1/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn." not in page


def test_the_schema_validates_against_the_openapi_specification(api_as, rep):
    from drf_spectacular.validation import validate_schema

    response = api_as(rep).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    validate_schema(json.loads(response.content))
