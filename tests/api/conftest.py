"""The API tests' helpers: clients for each kind of caller, and a valid call payload."""

import copy

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import ApiKeyFactory, PolicyFactory, WorkflowFactory

CALL = {
    "external_id": "gong-4711",
    "title": "Acme pricing call",
    "started_at": "2026-11-21T15:00:00Z",
    "duration_s": 1800,
    "owner": "riley@acme.example",
    "attendees": [
        {"name": "Riley Rep", "email": "riley@acme.example", "internal": True},
        {"name": "Jane Doe", "email": "jane@customer.example", "internal": False},
    ],
    "transcript": [
        {"speaker": "Jane Doe", "start": 12.5, "text": "We can sign by the end of March."},
    ],
}


@pytest.fixture
def call_payload():
    """``call_payload(**changes)``: a fresh valid call body with ``changes`` applied."""

    def _payload(**changes: object) -> dict:
        return {**copy.deepcopy(CALL), **changes}

    return _payload


@pytest.fixture
def api_as():
    """``api_as(user)``: an APIClient authenticated as ``user`` (None: anonymous)."""

    def _client(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return _client


@pytest.fixture
def api_key(workspace):
    return ApiKeyFactory(workspace=workspace, name="Gong webhook")


@pytest.fixture
def key_client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key.secret}")
    return client


@pytest.fixture
def workflow(workspace):
    """A HubSpot deal workflow that triggers on any call with an external attendee, in a
    workspace with a policy and no CRM connection: its runs fail at connection time."""
    PolicyFactory(workspace=workspace)
    return WorkflowFactory(workspace=workspace, name="Deal hygiene", key="deal-hygiene")


@pytest.fixture(autouse=True)
def _no_failed_authentications_counted():
    """Each test starts with a clean slate: failed authentications are counted in the cache."""
    cache.clear()
