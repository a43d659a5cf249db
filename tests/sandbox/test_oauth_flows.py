"""The OAuth authorization-code flow of both CRM sandboxes, end to end over real HTTP:
consent screen, Allow/Deny redirects, code exchange, the token on a real API call, identity,
refresh and revocation, and every way a code or a consent form is refused."""

import html
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hubspot import HubSpot

from integrations.sandbox import consent, seed, store
from integrations.sandbox.models import (
    Access,
    SandboxAccount,
    SandboxAuthorizationCode,
    SandboxRequest,
    SandboxUser,
)

CLIENT_ID = "crm-steward-app"
# The callback already has a query string: the sandbox must append to it, not replace it.
CALLBACK = "http://127.0.0.1:8000/connections/callback/?crm=1"
HUBSPOT_SCOPES = "oauth crm.objects.contacts.read crm.objects.owners.read"
V = "/services/data/v59.0"


@dataclass
class Form:
    action: str
    consent: str
    users: dict[str, str]  # label -> SandboxUser pk

    @classmethod
    def parse(cls, page: str) -> "Form":
        action = re.search(r'<form method="post" action="([^"]*)"', page)
        signed = re.search(r'name="consent" value="([^"]+)"', page)
        assert action, page
        assert signed, page
        options = re.findall(r'<option value="(\d+)">([^<]+)</option>', page)
        return cls(
            html.unescape(action.group(1)),
            signed.group(1),
            {html.unescape(label): pk for pk, label in options},
        )


@dataclass
class Crm:
    """One sandbox CRM as an OAuth client sees it."""

    url: str
    account: SandboxAccount
    admin: SandboxUser
    rep: SandboxUser
    authorize_path: str
    token_path: str
    params: dict[str, str]

    def authorize(self, **params: str | None) -> requests.Response:
        query = {name: value for name, value in {**self.params, **params}.items() if value}
        return requests.get(
            self.url + self.authorize_path, params=query, timeout=5, allow_redirects=False
        )

    def submit(
        self,
        page: requests.Response,
        decision: str = "allow",
        user: SandboxUser | None = None,
        **fields: str,
    ) -> requests.Response:
        form = Form.parse(page.text)
        data = {"consent": form.consent, "decision": decision, "user": (user or self.rep).pk}
        return requests.post(
            self.url + form.action, data={**data, **fields}, timeout=5, allow_redirects=False
        )

    def code(self, user: SandboxUser | None = None, **params: str | None) -> str:
        answer = self.submit(self.authorize(**params), user=user)
        assert answer.status_code == 302, answer.text
        return callback_query(answer)["code"]

    def exchange(self, code: str, **fields: str) -> requests.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": "not checked",
            "redirect_uri": CALLBACK,
        }
        return requests.post(self.url + self.token_path, data={**data, **fields}, timeout=5)

    def get(self, path: str, token: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.get(self.url + path, headers=headers, timeout=5, **kwargs)


def callback_query(answer: requests.Response) -> dict[str, str]:
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "&"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def _cast(provider: str, name: str, external_id: str | None = None) -> tuple:
    account = seed.create_account(provider, name, external_id=external_id)
    admin = seed.add_user(account, "ada@seller.example", first_name="Ada", last_name="Admin")
    rep = seed.add_user(
        account, "riley@seller.example", first_name="Riley", last_name="Rep", access=Access.OWNED
    )
    gone = seed.add_user(account, "gone@seller.example")
    SandboxUser.objects.filter(pk=gone.pk).update(is_active=False)
    return account, admin, rep


@pytest.fixture
def hubspot(sandbox_server) -> Crm:
    account, admin, rep = _cast("hubspot", "OAuth Portal", "62515")
    return Crm(
        sandbox_server.url,
        account,
        admin,
        rep,
        "/oauth/authorize",
        "/oauth/v1/token",
        {
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "scope": HUBSPOT_SCOPES,
            "optional_scope": "crm.objects.deals.read",
            "state": "hs-state-1",
        },
    )


@pytest.fixture
def salesforce(sandbox_server) -> Crm:
    account, admin, rep = _cast("salesforce", "OAuth Org")
    return Crm(
        sandbox_server.url,
        account,
        admin,
        rep,
        "/services/oauth2/authorize",
        "/services/oauth2/token",
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "state": "sf-state-1",
        },
    )


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request, sandbox_server) -> Crm:
    return request.getfixturevalue(request.param)


# --- the consent screen ----------------------------------------------------------------------


def test_the_hubspot_screen_lists_portals_active_users_and_scopes(hubspot):
    seed.add_user(
        seed.create_account("hubspot", "Second Portal", external_id="77001"), "sam@two.example"
    )
    seed.add_user(seed.create_account("salesforce", "Not HubSpot"), "sf@elsewhere.example")

    page = hubspot.authorize()

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert (page.headers["X-Frame-Options"], page.headers["Cache-Control"]) == ("DENY", "no-store")
    assert "Sandbox HubSpot" in page.text
    assert "Portal 62515 · OAuth Portal" in page.text
    assert "Portal 77001 · Second Portal" in page.text
    assert set(Form.parse(page.text).users) == {
        "Ada Admin <ada@seller.example>",
        "Riley Rep <riley@seller.example>",
        "sam@two.example",
    }
    for scope in HUBSPOT_SCOPES.split():
        assert f"<code>{scope}</code>" in page.text
    assert '<code>crm.objects.deals.read</code> <span class="optional">' in page.text
    assert "<code>127.0.0.1:8000</code>" in page.text
    logged = SandboxRequest.objects.get(path="/oauth/authorize")
    assert (logged.provider, logged.kind, logged.status) == ("hubspot", "auth", 200)


def test_the_salesforce_screen_lists_orgs_and_defaults_the_scopes(salesforce):
    page = salesforce.authorize()

    assert page.status_code == 200
    assert "Sandbox Salesforce" in page.text
    assert f"Org {salesforce.account.external_id} · OAuth Org" in page.text
    assert set(Form.parse(page.text).users) == {
        "Ada Admin <ada@seller.example>",
        "Riley Rep <riley@seller.example>",
    }
    assert "<code>api</code>" in page.text
    assert "<code>refresh_token</code>" in page.text


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"client_id": None}, "missing_client_id", "The client_id parameter is missing."),
        ({"redirect_uri": None}, "missing_redirect_uri", "The redirect_uri parameter is missing"),
        ({"redirect_uri": "/callback"}, "invalid_redirect_uri", "absolute http://"),
        ({"redirect_uri": "javascript:alert(1)"}, "invalid_redirect_uri", "absolute http://"),
        ({"redirect_uri": "ftp://example.com/cb"}, "invalid_redirect_uri", "absolute http://"),
        ({"redirect_uri": "https://a.example/cb#x"}, "invalid_redirect_uri", "fragment"),
        ({"redirect_uri": "http://a.example:http/cb"}, "invalid_redirect_uri", "absolute"),
    ],
)
def test_bad_parameters_get_an_error_page_and_no_redirect(crm, params, code, message):
    page = crm.authorize(**params)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert message in html.unescape(page.text)
    assert f"<code>{code}</code>" in page.text
    assert SandboxRequest.objects.get(path=crm.authorize_path).error_code == code


def test_each_crm_checks_its_own_required_parameters(hubspot, salesforce):
    no_scope = hubspot.authorize(scope=None)
    no_type = salesforce.authorize(response_type=None)
    implicit = salesforce.authorize(response_type="token")

    assert (no_scope.status_code, "missing_scope" in no_scope.text) == (400, True)
    for page in (no_type, implicit):
        assert page.status_code == 400
        assert "unsupported_response_type" in page.text
        assert "response_type must be code" in page.text


def test_a_crm_without_users_says_so(sandbox_server):
    crm = requests.get(
        sandbox_server.url + "/oauth/authorize",
        params={"client_id": CLIENT_ID, "redirect_uri": CALLBACK, "scope": "oauth"},
        timeout=5,
    )

    assert crm.status_code == 400
    assert "no_sandbox_users" in crm.text


# --- Allow and Deny ----------------------------------------------------------------------------


def test_hubspot_allow_gives_a_code_whose_tokens_act_as_the_chosen_user(hubspot):
    allowed = hubspot.submit(hubspot.authorize())
    back = callback_query(allowed)

    assert allowed.status_code == 302
    assert back["state"] == "hs-state-1"
    assert back["crm"] == "1"
    code = SandboxAuthorizationCode.objects.get(code=back["code"])
    assert (code.user, code.client_id, code.redirect_uri) == (hubspot.rep, CLIENT_ID, CALLBACK)
    assert timedelta(minutes=9) < code.expires_at - store.now() <= timedelta(minutes=10)
    assert SandboxRequest.objects.filter(method="POST", path="/oauth/authorize").get().user == (
        hubspot.rep
    )

    answer = hubspot.exchange(back["code"])

    assert answer.status_code == 200
    body = answer.json()
    granted = [*HUBSPOT_SCOPES.split(), "crm.objects.deals.read"]
    assert body == {
        "token_type": "bearer",
        "refresh_token": body["refresh_token"],
        "access_token": body["access_token"],
        "expires_in": 1800,
        "hub_id": 62515,
        "user_id": int(hubspot.rep.crm_user_id),
        "scopes": granted,
    }
    owners = hubspot.get("/crm/v3/owners/", body["access_token"])
    assert owners.status_code == 200
    assert "riley@seller.example" in {owner["email"] for owner in owners.json()["results"]}
    # Only the granted scopes: contacts may be read, companies may not.
    assert hubspot.get("/crm/v3/objects/contacts", body["access_token"]).status_code == 200
    refused = hubspot.get("/crm/v3/objects/companies", body["access_token"])
    assert (refused.status_code, refused.json()["category"]) == (403, "MISSING_SCOPES")
    info = requests.get(
        hubspot.url + f"/oauth/v1/access-tokens/{body['access_token']}", timeout=5
    ).json()
    assert info["user"] == "riley@seller.example"
    assert (info["hub_id"], info["user_id"]) == (62515, int(hubspot.rep.crm_user_id))
    assert (info["scopes"], info["token_type"]) == (granted, "access")
    assert 1790 <= info["expires_in"] <= 1800


def test_salesforce_allow_gives_a_code_whose_tokens_act_as_the_chosen_user(salesforce):
    seed.add_record(salesforce.account, "deal", {"name": "Mine"}, owner=salesforce.rep)
    seed.add_record(salesforce.account, "deal", {"name": "Theirs"}, owner=salesforce.admin)
    back = callback_query(salesforce.submit(salesforce.authorize()))

    answer = salesforce.exchange(back["code"])

    assert back["state"] == "sf-state-1"
    assert answer.status_code == 200
    body = answer.json()
    org_id, user_id = salesforce.account.external_id, salesforce.rep.crm_user_id
    assert list(body) == [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["access_token"].startswith(org_id + "!")
    assert (body["scope"], body["token_type"]) == ("api refresh_token", "Bearer")
    assert body["instance_url"] == salesforce.url
    assert body["id"] == f"{salesforce.url}/id/{org_id}/{user_id}"
    # The rep sees only their own deal: the token acts as the user chosen on the screen.
    query = salesforce.get(
        V + "/query/", body["access_token"], params={"q": "SELECT Name FROM Opportunity"}
    )
    assert query.status_code == 200
    assert [record["Name"] for record in query.json()["records"]] == ["Mine"]
    identity = salesforce.get(f"/id/{org_id}/{user_id}", body["access_token"]).json()
    assert {key: identity[key] for key in ("user_id", "organization_id", "username")} == {
        "user_id": user_id,
        "organization_id": org_id,
        "username": "riley@seller.example",
    }
    assert (identity["email"], identity["display_name"]) == ("riley@seller.example", "Riley Rep")
    assert (identity["first_name"], identity["last_name"]) == ("Riley", "Rep")
    assert identity["asserted_user"] is True
    assert identity["urls"]["rest"] == salesforce.url + "/services/data/v{version}/"
    versioned = salesforce.get(
        body["id"].removeprefix(salesforce.url), body["access_token"], params={"version": "59.0"}
    )
    assert versioned.json()["urls"]["query"] == salesforce.url + V + "/query/"


def test_deny_redirects_with_each_crms_access_denied(hubspot, salesforce):
    hubspot_denied = hubspot.submit(hubspot.authorize(), decision="deny")
    salesforce_denied = salesforce.submit(salesforce.authorize(), decision="deny")

    assert callback_query(hubspot_denied) == {
        "crm": "1",
        "error": "access_denied",
        "state": "hs-state-1",
    }
    assert callback_query(salesforce_denied) == {
        "crm": "1",
        "error": "access_denied",
        "error_description": "end-user denied authorization",
        "state": "sf-state-1",
    }
    assert not SandboxAuthorizationCode.objects.exists()


def test_the_redirect_omits_a_state_the_client_did_not_send(crm):
    allowed = crm.submit(crm.authorize(state=None))

    assert set(callback_query(allowed)) == {"crm", "code"}


# --- forged and replayed consent forms -------------------------------------------------------


def test_a_forged_or_tampered_form_is_refused_without_a_redirect(hubspot, salesforce):
    page = hubspot.authorize()
    signed = Form.parse(page.text).consent
    unsigned, _, signature = signed.rpartition(":")

    def post(crm: Crm, consent: str) -> requests.Response:
        data = {"consent": consent, "decision": "allow", "user": crm.rep.pk}
        return requests.post(
            crm.url + crm.authorize_path, data=data, timeout=5, allow_redirects=False
        )

    attempts = [
        post(hubspot, ""),
        post(hubspot, "e30:1tW9Xa:forged"),
        post(hubspot, f"{unsigned}:{signature[::-1]}"),
        # Signed per CRM: a HubSpot form is no good on the Salesforce screen.
        post(salesforce, signed),
    ]

    for answer in attempts:
        assert answer.status_code == 400
        assert "Location" not in answer.headers
        assert "<code>invalid_consent</code>" in answer.text
    assert not SandboxAuthorizationCode.objects.exists()


def test_the_signed_parameters_decide_where_the_browser_goes(hubspot):
    form = Form.parse(hubspot.authorize().text)

    answer = requests.post(
        hubspot.url + "/oauth/authorize?redirect_uri=https://evil.example/&state=evil",
        data={"consent": form.consent, "decision": "allow", "user": hubspot.rep.pk},
        timeout=5,
        allow_redirects=False,
    )

    assert callback_query(answer)["state"] == "hs-state-1"


def test_a_replayed_expired_or_incomplete_form_is_refused(hubspot, salesforce, monkeypatch):
    page = hubspot.authorize()
    first = hubspot.submit(page)
    replayed = hubspot.submit(page)
    wrong_crm_user = hubspot.submit(hubspot.authorize(), user=salesforce.rep)
    gone = SandboxUser.objects.get(email="gone@seller.example", account=hubspot.account)
    inactive = hubspot.submit(hubspot.authorize(), user=gone)
    undecided = hubspot.submit(hubspot.authorize(), decision="maybe")
    monkeypatch.setattr(consent, "FORM_LIFETIME", timedelta(seconds=-1))
    expired = hubspot.submit(hubspot.authorize())

    assert first.status_code == 302
    for answer, code in [
        (replayed, "consent_reused"),
        (wrong_crm_user, "invalid_user"),
        (inactive, "invalid_user"),
        (undecided, "invalid_decision"),
        (expired, "consent_expired"),
    ]:
        assert (answer.status_code, "Location" in answer.headers) == (400, False)
        assert f"<code>{code}</code>" in answer.text
    assert SandboxAuthorizationCode.objects.count() == 1


# --- the code exchange ------------------------------------------------------------------------


def test_a_hubspot_code_works_once_and_a_replay_revokes_its_tokens(hubspot):
    code = hubspot.code()
    first = hubspot.exchange(code).json()

    again = hubspot.exchange(code)

    assert (again.status_code, again.json()["status"]) == (400, "BAD_AUTH_CODE")
    assert again.json()["message"] == "auth code has already been used"
    assert hubspot.get("/crm/v3/owners/", first["access_token"]).status_code == 401
    refresh = requests.post(
        hubspot.url + "/oauth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        timeout=5,
    )
    assert refresh.json()["status"] == "BAD_REFRESH_TOKEN"


def test_a_salesforce_code_works_once_and_a_replay_revokes_its_tokens(salesforce):
    code = salesforce.code()
    first = salesforce.exchange(code).json()

    again = salesforce.exchange(code)

    assert (again.status_code, again.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "invalid authorization code"},
    )
    assert salesforce.get(V + "/limits/", first["access_token"]).status_code == 401


def test_expired_and_mismatched_codes_get_each_crms_errors(hubspot, salesforce):
    answers = {}
    for name, crm in (("hubspot", hubspot), ("salesforce", salesforce)):
        expired = crm.code()
        SandboxAuthorizationCode.objects.filter(code=expired).update(
            expires_at=store.now() - timedelta(seconds=1)
        )
        mismatched = crm.code()
        answers[name] = [
            crm.exchange(expired),
            crm.exchange(mismatched, redirect_uri=CALLBACK + "&x=1"),
            crm.exchange(mismatched, client_id="another-app"),
            crm.exchange("no-such-code"),
            # A mismatch does not spend the code.
            crm.exchange(mismatched),
        ]

    assert [(a.status_code, a.json()["status"]) for a in answers["hubspot"][:4]] == [
        (400, "BAD_AUTH_CODE"),
        (400, "BAD_REDIRECT_URI"),
        (400, "BAD_CLIENT_ID"),
        (400, "BAD_AUTH_CODE"),
    ]
    assert answers["hubspot"][0].json()["message"] == "auth code is expired"
    assert [(a.status_code, a.json()) for a in answers["salesforce"][:4]] == [
        (400, {"error": "invalid_grant", "error_description": "expired authorization code"}),
        (
            400,
            {
                "error": "redirect_uri_mismatch",
                "error_description": "redirect_uri must match configuration",
            },
        ),
        (400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}),
        (400, {"error": "invalid_grant", "error_description": "invalid authorization code"}),
    ]
    assert answers["hubspot"][4].status_code == answers["salesforce"][4].status_code == 200


# --- after the exchange: refresh, revoke, identity -------------------------------------------


def test_hubspot_tokens_refresh_and_the_refresh_token_can_be_revoked(hubspot):
    first = hubspot.exchange(hubspot.code()).json()

    refreshed = requests.post(
        hubspot.url + "/oauth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        timeout=5,
    ).json()
    revoked = requests.delete(
        hubspot.url + f"/oauth/v1/refresh-tokens/{first['refresh_token']}", timeout=5
    )
    after = requests.post(
        hubspot.url + "/oauth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        timeout=5,
    )

    assert set(refreshed) == set(first)
    assert refreshed["refresh_token"] == first["refresh_token"]
    assert (refreshed["user_id"], refreshed["scopes"]) == (first["user_id"], first["scopes"])
    assert refreshed["access_token"] != first["access_token"]
    assert revoked.status_code == 204
    assert hubspot.get("/crm/v3/owners/", refreshed["access_token"]).status_code == 401
    assert after.json()["status"] == "BAD_REFRESH_TOKEN"


def test_salesforce_tokens_refresh_and_revoke(salesforce):
    first = salesforce.exchange(salesforce.code()).json()
    revoke = salesforce.url + "/services/oauth2/revoke"

    def refresh() -> requests.Response:
        return requests.post(
            salesforce.url + "/services/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            timeout=5,
        )

    refreshed = refresh().json()
    assert "refresh_token" not in refreshed
    assert refreshed["id"] == first["id"]
    assert salesforce.get(V + "/limits/", refreshed["access_token"]).status_code == 200

    # Revoking an access token ends it alone: the refresh token still mints new ones.
    revoked_access = requests.post(revoke, data={"token": refreshed["access_token"]}, timeout=5)
    assert (revoked_access.status_code, revoked_access.content) == (200, b"")
    assert salesforce.get(V + "/limits/", refreshed["access_token"]).status_code == 401
    again = refresh().json()
    assert salesforce.get(V + "/limits/", again["access_token"]).status_code == 200

    # Revoking the refresh token ends it and its access token.
    assert requests.post(revoke, data={"token": first["refresh_token"]}, timeout=5).ok
    assert salesforce.get(V + "/limits/", again["access_token"]).status_code == 401
    assert refresh().json()["error"] == "invalid_grant"
    unknown = requests.post(revoke, data={"token": "nope"}, timeout=5)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unsupported_token_type")


def test_salesforce_scopes_decide_the_refresh_token_and_whose_identity_is_readable(salesforce):
    narrow = salesforce.exchange(salesforce.code(scope="id openid")).json()
    wide = salesforce.exchange(salesforce.code(user=salesforce.admin)).json()
    org_id = salesforce.account.external_id
    rep_path = f"/id/{org_id}/{salesforce.rep.crm_user_id}"
    admin_path = f"/id/{org_id}/{salesforce.admin.crm_user_id}"

    assert "refresh_token" not in narrow
    assert narrow["scope"] == "id openid"
    # Without the api scope the token may not call the REST API: an invalid session...
    refused = salesforce.get(V + "/limits/", narrow["access_token"])
    assert refused.status_code == 401
    assert refused.json() == [
        {
            "message": "This session is not valid for use with the REST API",
            "errorCode": "INVALID_SESSION_ID",
        }
    ]
    # ...but reads its own identity, by header or by oauth_token parameter.
    assert salesforce.get(rep_path, narrow["access_token"]).status_code == 200
    by_param = requests.get(
        salesforce.url + rep_path, params={"oauth_token": narrow["access_token"]}, timeout=5
    )
    assert by_param.json()["user_id"] == salesforce.rep.crm_user_id
    other = salesforce.get(admin_path, narrow["access_token"])
    assert (other.status_code, other.text) == (404, "Bad_Id")
    # An api-scoped token reads any user of its org.
    seen = salesforce.get(rep_path, wide["access_token"]).json()
    assert (seen["username"], seen["asserted_user"]) == ("riley@seller.example", False)
    missing = requests.get(salesforce.url + rep_path, timeout=5)
    assert (missing.status_code, missing.text) == (403, "Bad_OAuth_Token")


def test_hubspots_sdk_exchanges_the_code_and_reads_the_token_unchanged(hubspot):
    client = HubSpot(host=hubspot.url)
    code = hubspot.code()

    tokens = client.oauth.tokens_api.create(
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        client_id=CLIENT_ID,
        client_secret="not checked",
    )
    info = client.oauth.access_tokens_api.get(tokens.access_token)

    assert (tokens.token_type, tokens.expires_in) == ("bearer", 1800)
    assert (info.user, info.hub_id, info.user_id) == (
        "riley@seller.example",
        62515,
        int(hubspot.rep.crm_user_id),
    )
    owners = HubSpot(access_token=tokens.access_token, host=hubspot.url).crm.owners.owners_api
    assert "riley@seller.example" in {owner.email for owner in owners.get_page().results}
