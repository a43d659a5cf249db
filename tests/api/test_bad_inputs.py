"""What a hostile or careless client sends gets a clear JSON answer naming what was wrong,
never a 500 or an HTML page: NUL characters, JSON nested without end, page sizes of twenty
digits, bodies over the size limit, times no database can hold, unknown paths."""

import json
import re

import pytest
from django.test import RequestFactory

from crm_agents.api import errors
from crm_agents.api.pagination import MAX_LIMIT, MAX_OFFSET
from crm_agents.calls import EMAIL_PATTERN, MAX_TURN_TEXT
from crm_agents.models import Call
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db

CALLS = "/api/v1/calls/"
MiB = 1024 * 1024


def _post_json(client, url: str, text: str):
    return client.post(url, text, content_type="application/json")


def _transcript_of(size: int) -> list[dict]:
    """Turns of MAX_TURN_TEXT characters adding up to about ``size`` bytes."""
    turns = size // MAX_TURN_TEXT
    return [{"speaker": "Jane", "start": i, "text": "w" * MAX_TURN_TEXT} for i in range(turns)]


# --- NUL characters -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": "gong\u00004711"}, "external_id"),
        ({"title": "\u0000"}, "title"),
        (
            {"attendees": [{"name": "Ja\u0000ne", "email": "jane@customer.example"}]},
            "attendees.0.name",
        ),
        ({"transcript": [{"speaker": "J", "start": 1, "text": "hi\u0000"}]}, "transcript.0.text"),
    ],
)
def test_it_refuses_a_nul_character_anywhere_in_a_body(
    api_as, rep, workflow, call_payload, change, field
):
    response = api_as(rep).post(CALLS, call_payload(**change), format="json")

    assert response.status_code == 400
    assert "NUL" in " ".join(response.json()[field])
    assert Call.objects.count() == 0


def test_it_refuses_a_nul_character_in_a_field_name(api_as, rep, workflow):
    response = _post_json(api_as(rep), CALLS, '{"external\\u0000id": "x"}')

    assert response.status_code == 400
    assert "field name" in " ".join(response.json()["non_field_errors"])


def test_it_refuses_a_lone_surrogate(api_as, rep, workflow):
    response = _post_json(api_as(rep), CALLS, '{"title": "\\ud800"}')

    assert response.status_code == 400
    assert "Unicode" in " ".join(response.json()["title"])


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/workflows/?provider=%00", "provider"),
        ("/api/v1/change-sets/?status=%00", "status"),
        ("/api/v1/calls/?external_id=%00", "external_id"),
        ("/api/v1/runs/?status=%00", "status"),
        ("/api/v1/chat-sessions/?provider=%00", "provider"),
        ("/api/v1/calls/?anything=%00", "anything"),
        ("/api/v1/calls/1/?x=a%00b", "x"),
    ],
)
def test_it_refuses_a_nul_character_in_a_query_parameter(api_as, rep, url, param):
    response = api_as(rep).get(url)

    assert response.status_code == 400
    assert "NUL" in " ".join(response.json()[param])


# --- nesting --------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [100_000, 40])
def test_it_refuses_json_nested_too_deep(api_as, rep, workflow, depth):
    body = '{"title": ' + "[" * depth + "]" * depth + "}"

    response = _post_json(api_as(rep), CALLS, body)

    assert response.status_code == 400
    assert "nested deeper" in response.json()["detail"]


# --- paging ---------------------------------------------------------------------------------
def test_it_caps_a_huge_limit(api_as, rep, workspace):
    CallFactory.create_batch(3, workspace=workspace)

    response = api_as(rep).get(f"{CALLS}?limit=99999999999999999999&offset=1")

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert len(response.json()["results"]) == 2
    assert response.json()["previous"].endswith(f"?limit={MAX_LIMIT}")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-5", "offset"),
        ("offset=x", "offset"),
        (f"offset={MAX_OFFSET + 1}", "offset"),
        ("offset=99999999999999999999999", "offset"),
        ("limit=", "limit"),
    ],
)
def test_it_refuses_a_limit_or_offset_that_is_not_a_page(api_as, rep, query, param):
    response = api_as(rep).get(f"{CALLS}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [param]


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/runs/?status=dancing", "status"),
        ("/api/v1/workflows/?provider=pipedrive", "provider"),
        ("/api/v1/calls/?workspace=-1", "workspace"),
        ("/api/v1/runs/?call=99999999999999999999", "call"),
        ("/api/v1/runs/?is_test=yes", "is_test"),
        (f"/api/v1/calls/?external_id={'x' * 256}", "external_id"),
        ("/api/v1/runs/?call=", "call"),
        ("/api/v1/change-sets/?status=", "status"),
    ],
)
def test_it_refuses_a_filter_value_of_the_wrong_kind(api_as, rep, url, param):
    response = api_as(rep).get(url)

    assert response.status_code == 400
    assert list(response.json()) == [param]


def test_an_empty_text_filter_is_no_filter(api_as, rep, workspace):
    CallFactory(workspace=workspace)

    response = api_as(rep).get(f"{CALLS}?external_id=")

    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("email", "accepted"),
    [(" jane@customer.example\t", True), ("ja\x1cne@customer.example", False)],
)
def test_an_email_is_checked_by_the_rule_the_schema_publishes(
    api_as, rep, workflow, call_payload, email, accepted
):
    # \x1c is a space to Python but not to JSON Schema's \s: the pattern spells spaces out.
    response = api_as(rep).post(CALLS, call_payload(owner=email), format="json")

    assert (response.status_code == 202) is accepted
    assert (re.fullmatch(EMAIL_PATTERN, email) is not None) is accepted


@pytest.mark.parametrize("pk", ["abc", "-1", "0", "99999999999999999999999"])
def test_an_id_that_cannot_be_one_is_a_json_404(api_as, rep, pk):
    response = api_as(rep).get(f"{CALLS}{pk}/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


# --- size -----------------------------------------------------------------------------------
def test_it_accepts_a_five_megabyte_transcript(api_as, rep, workflow, call_payload):
    payload = call_payload(transcript=_transcript_of(5 * MiB))
    assert len(json.dumps(payload)) > 5 * MiB

    response = api_as(rep).post(CALLS, payload, format="json")

    assert response.status_code == 202
    assert len(Call.objects.get().transcript) == len(payload["transcript"])


def test_a_body_over_the_limit_is_a_json_413(api_as, rep, workflow, call_payload, settings):
    payload = call_payload(transcript=_transcript_of(9 * MiB))
    assert len(json.dumps(payload)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 8 * MiB

    response = api_as(rep).post(CALLS, payload, format="json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "8 MiB" in response.json()["detail"]
    assert Call.objects.count() == 0


# --- times ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("started_at", "says"),
    [
        ("9999-12-31T23:59:59-14:00", "1970 to 2199"),
        ("0001-01-01T00:00:00+14:00", "1970 to 2199"),
        ("1969-12-31T23:59:59Z", "1970 to 2199"),
        ("2200-01-01T00:00:00Z", "1970 to 2199"),
        ("2026-11-21T15:00:00+16:00", "UTC offset"),
        ("2026-11-21T15:00:00-23:59", "UTC offset"),
        ("2026-11-21T15:00:00+14:30", "UTC offset"),
        ("2026-11-21T15:00:00+24:00", "2026-11-21T15:00:00Z"),
        ("2026-02-30T15:00:00Z", "not a date"),
        ("2026-11-21 15:00:00Z", "2026-11-21T15:00:00Z"),
        ("yesterday", "not a date"),
    ],
)
def test_it_refuses_a_time_it_cannot_store_or_show(
    api_as, rep, workflow, call_payload, started_at, says
):
    response = api_as(rep).post(CALLS, call_payload(started_at=started_at), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["started_at"]
    assert says in response.json()["started_at"][0]
    assert Call.objects.count() == 0


@pytest.mark.parametrize(
    "started_at",
    ["1970-01-01T00:00:00+14:00", "2199-12-31T23:59:59.999999-14:00", "2028-02-29T12:00:00Z"],
)
def test_a_time_at_the_edge_of_the_range_is_stored_and_shown(
    api_as, rep, workflow, call_payload, started_at
):
    client = api_as(rep)

    created = client.post(CALLS, call_payload(started_at=started_at), format="json")

    assert created.status_code == 202
    assert client.get(CALLS).status_code == 200
    assert client.get(f"{CALLS}{created.json()['id']}/").status_code == 200


# --- Django's own error pages, as JSON under /api/ -----------------------------------------
def test_an_unknown_api_path_is_a_json_404(api_as, rep):
    response = api_as(rep).get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_method_the_api_does_not_take_is_a_json_405(api_as, rep):
    response = api_as(rep).delete(CALLS)

    assert response.status_code == 405
    assert "detail" in response.json()


def test_a_server_error_under_the_api_is_json():
    response = errors.server_error(RequestFactory().get("/api/v1/calls/"))

    assert response.status_code == 500
    assert json.loads(response.content) == {"detail": "Server error: it has been logged."}


def test_a_server_error_elsewhere_is_the_usual_page():
    response = errors.server_error(RequestFactory().get("/admin/"))

    assert response.status_code == 500
    assert b"<h1>Server Error (500)</h1>" in response.content
