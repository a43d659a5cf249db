"""The API takes API keys and personal tokens (and the admin session), never a password;
failed authentications are throttled per client address and per presented key prefix,
with a JSON 429 that says when to try again."""

import base64

import pytest
from rest_framework.test import APIClient

from crm_agents.api import throttling
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

CALLS = "/api/v1/calls/"
LIMIT = 10  # REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth_failure"]: 10/min


def _client(header: str, ip: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_a_correct_password_is_refused(rep):
    response = _client(_basic(rep.username, TEST_PASSWORD)).get(CALLS)

    assert response.status_code == 401
    assert "Passwords are not accepted" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Api-Key"


def test_the_admin_session_still_works(login, rep):
    assert login(rep).get(CALLS).status_code == 200


def test_thirty_wrong_passwords_are_throttled_after_the_limit(rep):
    client = _client(_basic(rep.username, "guess"))

    statuses = [client.get(CALLS).status_code for _ in range(30)]

    assert statuses == [401] * LIMIT + [429] * (30 - LIMIT)


def test_thirty_wrong_keys_are_throttled_and_told_when_to_retry(api_key):
    wrong = [_client(f"Api-Key wrong-key-{n:02d}-0123456789") for n in range(30)]

    responses = [client.get(CALLS) for client in wrong]

    assert [r.status_code for r in responses] == [401] * LIMIT + [429] * (30 - LIMIT)
    throttled = responses[-1]
    assert throttled["Content-Type"] == "application/json"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert "Too many failed authentication attempts" in throttled.json()["detail"]


def test_a_throttled_client_is_refused_even_with_the_right_key(api_key):
    for _ in range(LIMIT):
        _client("Token wrong-token-0123456789").get(CALLS)

    response = _client(f"Api-Key {api_key.secret}").get(CALLS)

    assert response.status_code == 429


def test_other_clients_are_not_throttled(api_key):
    for _ in range(LIMIT):
        _client("Token wrong-token-0123456789", ip="203.0.113.7").get(CALLS)

    response = _client(f"Api-Key {api_key.secret}", ip="198.51.100.2").get(CALLS)

    assert response.status_code == 200


def test_guesses_at_one_key_from_many_addresses_are_throttled_together(api_key):
    forged = api_key.secret[:8] + "x" * 35
    for n in range(LIMIT):
        _client(f"Api-Key {forged}", ip=f"192.0.2.{n}").get(CALLS)

    response = _client(f"Api-Key {forged}", ip="192.0.2.200").get(CALLS)

    assert response.status_code == 429


def test_the_throttle_forgets_at_the_end_of_its_window(api_key, monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(throttling.time, "time", lambda: now[0])
    for _ in range(LIMIT):
        _client("Token wrong-token-0123456789").get(CALLS)
    assert _client(f"Api-Key {api_key.secret}").get(CALLS).status_code == 429

    now[0] += 60

    assert _client(f"Api-Key {api_key.secret}").get(CALLS).status_code == 200


def test_a_request_without_credentials_is_not_counted(api_key):
    for _ in range(LIMIT + 5):
        assert APIClient(REMOTE_ADDR="203.0.113.7").get(CALLS).status_code == 401

    assert _client(f"Api-Key {api_key.secret}").get(CALLS).status_code == 200


@pytest.mark.parametrize(
    "header", ["Api-Key a\x00b", "Token ../../etc/passwd", "Api-Key " + "k" * 500]
)
def test_a_malformed_secret_is_a_401_without_a_lookup(header, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = _client(header).get(CALLS)

    assert response.status_code == 401
