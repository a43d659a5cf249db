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


@pytest.fixture
def schema(api_as, rep) -> dict:
    response = api_as(rep).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return json.loads(response.content)


def test_it_documents_every_error_where_it_occurs(schema):
    paths = schema["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert codes("/api/v1/calls/", "post") >= {"400", "401", "403", "404", "413", "415", "429"}
    assert codes("/api/v1/runs/", "get") == {"200", "400", "401", "429"}
    assert codes("/api/v1/runs/{id}/", "get") == {"200", "400", "401", "404", "429"}
    assert "409" in codes("/api/v1/proposals/{id}/decide/", "post")
    assert "413" not in codes("/api/v1/change-sets/{id}/approve/", "post")  # no body
    too_large = paths["/api/v1/calls/"]["post"]["responses"]["413"]
    assert "8 MiB" in too_large["description"]
    throttled = paths["/api/v1/calls/"]["get"]["responses"]["429"]
    assert throttled["headers"]["Retry-After"]["required"] is True


def test_it_says_which_values_may_be_null_or_blank(schema):
    components = schema["components"]["schemas"]
    change_set = components["ChangeSet"]["properties"]

    assert change_set["decided_by"]["type"] == ["string", "null"]
    assert change_set["requested_by"]["type"] == ["string", "null"]
    assert components["ApiToken"]["properties"]["revoked_at"]["type"] == ["string", "null"]
    review_mode = components["ChangeProposal"]["properties"]["review_mode"]["oneOf"]
    assert {"$ref": "#/components/schemas/BlankEnum"} in review_mode
    assert components["BlankEnum"]["enum"] == [""]
    owner_email = components["Call"]["properties"]["owner_email"]["oneOf"]
    assert {"type": "string", "maxLength": 0} in owner_email


def test_it_shows_the_input_rules_the_server_applies(schema):
    components = schema["components"]["schemas"]
    started_at = components["CallSubmissionRequest"]["properties"]["started_at"]
    limit = next(
        p for p in schema["paths"]["/api/v1/calls/"]["get"]["parameters"] if p["name"] == "limit"
    )
    status = next(
        p for p in schema["paths"]["/api/v1/runs/"]["get"]["parameters"] if p["name"] == "status"
    )

    assert started_at["pattern"].startswith("^(?:19[7-9][0-9]|2[01][0-9][0-9])-")
    assert "1970 to 2199" in started_at["description"]
    assert limit["schema"] == {"type": "integer", "minimum": 1}
    assert "500" in limit["description"]
    assert "pending_review" in status["schema"]["enum"]


def test_it_offers_no_password_scheme(schema):
    assert set(schema["components"]["securitySchemes"]) == {"apiKey", "apiToken", "cookieAuth"}
