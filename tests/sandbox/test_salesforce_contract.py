"""The Salesforce sandbox answers like Salesforce's REST API (reference/crm-apis.md PART B, C).

Raw ``requests`` calls pin paths, status codes, bodies and headers; simple-salesforce calls
prove the real client library works against it unchanged. Every test goes over HTTP.
"""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.api import Usage
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from integrations.crm.salesforce_session import session_for
from integrations.sandbox import seed, store
from integrations.sandbox.models import (
    Access,
    SandboxPropertyChange,
    SandboxRecord,
    SandboxRequest,
    SandboxToken,
    SandboxUser,
)
from integrations.sandbox.salesforce import metadata

V = "/services/data/v59.0"
SF_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")
LOCATOR_URL = re.compile(r"/services/data/v59\.0/query/01g[0-9A-Za-z]{15}-(\d+)")


@dataclass
class Org:
    url: str
    account: object
    admin: SandboxUser
    rep: SandboxUser
    tokens: dict

    def call(self, method: str, path: str, *, user: SandboxUser | None = None, **kwargs):
        token = self.tokens[(user or self.admin).pk]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 10)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def sf(self, user: SandboxUser | None = None, timeout: float = 10.0) -> Salesforce:
        return Salesforce(
            instance_url=self.url,
            session_id=self.tokens[(user or self.admin).pk],
            version="59.0",
            session=session_for(self.url, timeout=timeout),
        )

    def token_for(self, user: SandboxUser) -> str:
        self.tokens[user.pk] = seed.issue_token(user).access_token
        return self.tokens[user.pk]


@pytest.fixture
def org(sandbox_server) -> Org:
    account = seed.create_account("salesforce", "Contract org")
    admin = seed.add_user(account, "ada@seller.example", first_name="Ada", last_name="Admin")
    rep = seed.add_user(
        account,
        "riley@seller.example",
        first_name="Riley",
        last_name="Rep",
        access=Access.OWNED,
        team="East",
        readonly_fields=["deal.amount"],
        hidden_fields=["deal.next_step"],
    )
    world = Org(sandbox_server.url, account, admin, rep, {})
    world.token_for(admin)
    world.token_for(rep)
    return world


def _deal(org: Org, owner: SandboxUser | None = None, **fields) -> SandboxRecord:
    values = {"name": "Acme platform", "amount": 50000, "stage": "Qualification"}
    values |= {"close_date": "2026-12-31", **fields}
    return seed.add_record(org.account, "deal", values, owner=owner or org.admin)


# --- transport basics ------------------------------------------------------------------------


def test_it_lists_versions_without_auth_or_limit_header(org):
    response = requests.get(org.url + "/services/data/", timeout=10)

    assert response.status_code == 200
    assert "Sforce-Limit-Info" not in response.headers
    latest = {entry["version"]: entry for entry in response.json()}["59.0"]
    assert latest == {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}


def test_every_authenticated_call_reports_api_usage(org):
    first = org.call("GET", V + "/limits/")
    second = org.call("GET", V + "/sobjects")

    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert first.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert first.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}


def test_a_bad_or_expired_token_answers_the_error_array_with_401(org):
    expired = seed.issue_token(org.admin, expires_in=timedelta(seconds=-1)).access_token

    for token in ("nope", expired):
        response = requests.get(
            org.url + V + "/sobjects", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 401
        assert response.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_an_unknown_path_or_method_answers_salesforces_bodies(org):
    missing = org.call("GET", V + "/nothing/here")
    wrong = org.call("PUT", V + "/sobjects/Account/")

    assert missing.status_code == 404
    assert missing.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    assert wrong.status_code == 405
    assert wrong.json() == [
        {
            "message": "HTTP Method 'PUT' not allowed. Allowed are HEAD,GET,POST",
            "errorCode": "METHOD_NOT_ALLOWED",
        }
    ]


# --- describe ----------------------------------------------------------------------------------


def test_global_describe_lists_the_orgs_objects(org):
    body = org.call("GET", V + "/sobjects").json()

    assert (body["encoding"], body["maxBatchSize"]) == ("UTF-8", 200)
    names = {entry["name"]: entry for entry in body["sobjects"]}
    assert set(metadata.OBJECTS) <= set(names)
    assert names["Opportunity"]["urls"]["sobject"] == V + "/sobjects/Opportunity"
    assert names["OpportunityStage"]["keyPrefix"] == "01J"


@pytest.mark.parametrize("object_name", ["Account", "Contact", "Opportunity"])
def test_describe_keeps_the_shape_of_the_recorded_bodies(org, object_name):
    recorded = metadata.recorded(object_name)
    served = org.call("GET", f"{V}/sobjects/{object_name}/describe").json()

    assert list(served) == list(recorded)
    standard = {f["name"]: f for f in recorded["fields"] if not f["custom"]}
    fields = {f["name"]: f for f in served["fields"]}
    assert list(fields) == list(standard)
    for name, field in fields.items():
        assert set(field) == set(standard[name]), name
        assert field == standard[name], name
    assert served["urls"]["rowTemplate"] == f"{V}/sobjects/{object_name}/{{ID}}"


def test_describe_applies_the_users_field_level_security(org):
    admin = {
        f["name"]: f for f in org.call("GET", V + "/sobjects/Opportunity/describe").json()["fields"]
    }
    rep = {
        f["name"]: f
        for f in org.call("GET", V + "/sobjects/Opportunity/describe", user=org.rep).json()[
            "fields"
        ]
    }

    assert "NextStep" in admin
    assert "NextStep" not in rep  # hidden: not in describe at all
    assert (admin["Amount"]["createable"], admin["Amount"]["updateable"]) == (True, True)
    assert (rep["Amount"]["createable"], rep["Amount"]["updateable"]) == (False, False)
    assert rep["Name"] == admin["Name"]


def test_custom_fields_describe_like_setup_creates_them(org):
    seed.add_custom_field(org.account, "deal", "forecast", "enumeration", options=["a", "b"])
    seed.add_custom_field(org.account, "deal", "budget", "number")

    fields = {
        f["name"]: f for f in org.call("GET", V + "/sobjects/Opportunity/describe").json()["fields"]
    }

    forecast, budget = fields["Forecast__c"], fields["Budget__c"]
    assert set(forecast) == set(fields["StageName"])
    assert (forecast["custom"], forecast["type"], forecast["restrictedPicklist"]) == (
        True,
        "picklist",
        True,
    )
    assert [v["value"] for v in forecast["picklistValues"]] == ["a", "b"]
    assert (budget["type"], budget["soapType"], budget["custom"]) == ("double", "xsd:double", True)


def test_object_metadata_answers_the_global_entry(org):
    body = org.call("GET", V + "/sobjects/Contact/").json()

    assert body["objectDescribe"]["keyPrefix"] == "003"
    assert body["recentItems"] == []


# --- records -------------------------------------------------------------------------------


def test_a_record_answers_attributes_system_fields_and_typed_values(org):
    deal = _deal(org)

    body = org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}").json()

    assert body["attributes"] == {
        "type": "Opportunity",
        "url": f"{V}/sobjects/Opportunity/{deal.crm_id}",
    }
    assert list(body)[1:3] == ["Id", "IsDeleted"]
    assert (body["Id"], body["IsDeleted"], body["OwnerId"]) == (
        deal.crm_id,
        False,
        org.admin.crm_user_id,
    )
    for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        assert SF_DATETIME.fullmatch(body[name]), body[name]
    assert (body["Amount"], body["CloseDate"], body["IsClosed"]) == (50000, "2026-12-31", False)
    assert (body["Probability"], body["ForecastCategory"]) == (10, "Pipeline")


def test_fields_parameter_limits_the_answer_and_adds_the_id(org):
    deal = _deal(org)

    body = org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}?fields=name,Amount").json()
    bad = org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}?fields=Nope__c")

    assert list(body) == ["attributes", "Name", "Amount", "Id"]
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope__c' on entity 'Opportunity'" in bad.json()[0]["message"]


def test_missing_malformed_and_deleted_records_answer_404_bodies(org):
    deal = _deal(org)
    missing = store.salesforce_id("006", 62**8)
    org.call("DELETE", f"{V}/sobjects/Opportunity/{deal.crm_id}")

    not_found = org.call("GET", f"{V}/sobjects/Opportunity/{missing}")
    malformed = org.call("GET", f"{V}/sobjects/Opportunity/abc")
    deleted = org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}")

    assert not_found.status_code == malformed.status_code == deleted.status_code == 404
    assert not_found.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    assert malformed.json()[0]["message"] == (
        "Provided external ID field does not exist or is not accessible: abc"
    )
    assert deleted.json() == [
        {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
    ]


def test_create_answers_201_and_checks_required_fields(org):
    account = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)

    created = org.call(
        "POST",
        V + "/sobjects/Opportunity/",
        json={
            "Name": "New",
            "StageName": "Closed Won",
            "CloseDate": "2027-01-31",
            "AccountId": account.crm_id,
        },
    )
    missing = org.call("POST", V + "/sobjects/Opportunity/", json={"Name": "New"})

    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True
    assert body["errors"] == []
    record = SandboxRecord.objects.get(crm_id=body["id"])
    assert record.owner == org.admin
    assert (record.values["Probability"], record.values["ForecastCategoryName"]) == (100, "Closed")
    assert missing.status_code == 400
    assert missing.json() == [
        {
            "message": "Required fields are missing: [StageName, CloseDate]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["StageName", "CloseDate"],
        }
    ]


def test_patch_answers_204_and_keeps_field_history(org):
    deal = _deal(org)

    response = org.call(
        "PATCH", f"{V}/sobjects/Opportunity/{deal.crm_id}", json={"NextStep": "Send MSA"}
    )

    assert response.status_code == 204
    assert response.content == b""
    change = SandboxPropertyChange.objects.filter(record=deal, name="NextStep").get()
    assert (change.value, change.source_type) == ("Send MSA", "API")
    log = SandboxRequest.objects.get(method="PATCH")
    assert (log.kind, log.status, log.object_name) == ("write", 204, "Opportunity")
    assert log.written == {deal.crm_id: {"NextStep": "Send MSA"}}


@pytest.mark.parametrize(
    ("body", "code", "message", "fields"),
    [
        (
            {"Nope__c": 1},
            "INVALID_FIELD",
            "No such column 'Nope__c' on sobject of type Opportunity",
            [],
        ),
        (
            {"IsWon": True, "LastModifiedDate": "2020-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: IsWon, LastModifiedDate. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            ["IsWon", "LastModifiedDate"],
        ),
        (
            {"Name": None},
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
            ["Name"],
        ),
        (
            {"Forecast__c": "maybe"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "Forecast: bad value for restricted picklist field: maybe",
            ["Forecast__c"],
        ),
        (
            {"AccountId": "0035g000000000DAAQ"},
            "FIELD_INTEGRITY_EXCEPTION",
            "Account ID: id value of incorrect type: 0035g000000000DAAQ",
            ["AccountId"],
        ),
    ],
)
def test_invalid_writes_answer_400_with_salesforces_codes(org, body, code, message, fields):
    seed.add_custom_field(org.account, "deal", "forecast", "enumeration", options=["commit"])
    deal = _deal(org)

    response = org.call("PATCH", f"{V}/sobjects/Opportunity/{deal.crm_id}", json=body)

    assert response.status_code == 400
    assert response.json() == [{"message": message, "errorCode": code, "fields": fields}]
    assert not SandboxRequest.objects.filter(status=204).exists()


def test_values_a_field_cannot_hold_are_refused_naming_it(org):
    deal = _deal(org)
    path = f"{V}/sobjects/Opportunity/{deal.crm_id}"

    nul = org.call(
        "PATCH", path, data='{"Name": "A\\u0000B"}', headers={"Content-Type": "application/json"}
    )
    huge = org.call("PATCH", path, json={"Amount": "1e999999999"})
    odd_path = org.call("GET", f"{V}/sobjects/Opportunity/%00")

    assert nul.status_code == 400
    assert nul.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert nul.json()[0]["fields"] == ["Name"]
    assert huge.json() == [
        {
            "message": "Amount: value outside of valid range on numeric field: 1e999999999",
            "errorCode": "NUMBER_OUTSIDE_VALID_RANGE",
            "fields": ["Amount"],
        }
    ]
    assert odd_path.status_code == 404
    deal.refresh_from_db()
    assert deal.values["Name"] == "Acme platform"


def test_if_unmodified_since_refuses_a_write_after_a_later_change(org):
    deal = _deal(org)
    read_at = deal.updated_at
    store.update_record(deal, {"Amount": 60000}, at=read_at + timedelta(seconds=5))
    path = f"{V}/sobjects/Opportunity/{deal.crm_id}"

    stale = org.call(
        "PATCH",
        path,
        json={"Amount": 75000},
        headers={"If-Unmodified-Since": format_datetime(read_at, usegmt=True)},
    )
    invalid = org.call(
        "PATCH", path, json={"Amount": 75000}, headers={"If-Unmodified-Since": "yesterday"}
    )
    fresh = org.call(
        "PATCH",
        path,
        json={"Amount": 75000},
        headers={
            "If-Unmodified-Since": format_datetime(read_at + timedelta(seconds=10), usegmt=True)
        },
    )

    assert stale.status_code == 412
    assert stale.json()[0]["errorCode"] == "PRECONDITION_FAILED"
    assert invalid.status_code == 400
    assert fresh.status_code == 204
    deal.refresh_from_db()
    assert deal.values["Amount"] == 75000


def test_system_timestamps_have_whole_seconds_everywhere(org):
    deal = _deal(org)
    moment = datetime(2026, 5, 4, 10, 0, 0, 734_000, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(created_at=moment, updated_at=moment)
    names = "CreatedDate, LastModifiedDate, SystemModstamp"

    row = org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}").json()
    queried = org.call(
        "GET", V + "/query/", params={"q": f"SELECT {names} FROM Opportunity"}
    ).json()["records"][0]
    user = org.call("GET", f"{V}/sobjects/User/{org.admin.crm_user_id}").json()

    for answer in (row, queried):
        assert [answer[name] for name in names.split(", ")] == ["2026-05-04T10:00:00.000+0000"] * 3
    assert user["CreatedDate"][-9:] == ".000+0000"


def test_if_unmodified_since_compares_whole_seconds_as_salesforce_does(org):
    acme = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)
    second = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=acme.pk).update(updated_at=second + timedelta(milliseconds=200))
    path = f"{V}/sobjects/Account/{acme.crm_id}"
    tag = org.call("GET", path).headers["ETag"]
    # Another write later in the same second: LastModifiedDate does not move.
    acme.refresh_from_db()
    store.update_record(acme, {"Name": "Acme 2"}, at=second + timedelta(milliseconds=700))

    same_second = org.call(
        "PATCH",
        path,
        json={"Description": "a"},
        headers={"If-Unmodified-Since": format_datetime(second, usegmt=True)},
    )
    acme.refresh_from_db()
    store.update_record(acme, {"Name": "Acme 3"}, at=second + timedelta(seconds=1))
    next_second = org.call(
        "PATCH",
        path,
        json={"Description": "b"},
        headers={"If-Unmodified-Since": format_datetime(second, usegmt=True)},
    )

    # A real org accepts a write conditional on the second the record last changed in,
    # whatever else changed within it; a change in a later second is refused.
    assert same_second.status_code == 204
    assert next_second.status_code == 412
    # The strong validator still tells writes within one second apart.
    assert org.call("GET", path, headers={"If-None-Match": tag}).status_code == 200


def test_account_rows_carry_an_etag_that_if_match_checks(org):
    acme = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)
    contact = seed.add_record(org.account, "contact", {"last_name": "Lee"}, owner=org.admin)
    path = f"{V}/sobjects/Account/{acme.crm_id}"

    tag = org.call("GET", path).headers["ETag"]
    unchanged = org.call("GET", path, headers={"If-None-Match": tag})
    wrong = org.call("PATCH", path, json={"Name": "A"}, headers={"If-Match": '"other"'})
    right = org.call("PATCH", path, json={"Name": "B"}, headers={"If-Match": tag})
    ignored = org.call(
        "PATCH",
        f"{V}/sobjects/Contact/{contact.crm_id}",
        json={"Title": "CTO"},
        headers={"If-Match": '"other"'},
    )

    assert re.fullmatch(r'"[A-Za-z0-9+/=]+"', tag)
    assert unchanged.status_code == 304
    assert wrong.status_code == 412
    assert right.status_code == 204
    assert right.headers["ETag"] != tag
    assert ignored.status_code == 204


def test_delete_answers_204_and_cascades_to_contact_roles(org):
    acme = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)
    jane = seed.add_record(
        org.account, "contact", {"last_name": "Lee"}, owner=org.admin, associations=[acme]
    )
    deal = seed.add_record(
        org.account, "deal", {"name": "Big"}, owner=org.admin, associations=[acme, jane]
    )

    response = org.call("DELETE", f"{V}/sobjects/Account/{acme.crm_id}")

    assert response.status_code == 204
    live = SandboxRecord.objects.filter(account=org.account, deleted_at__isnull=True)
    assert not live.filter(crm_id__in=[acme.crm_id, jane.crm_id, deal.crm_id]).exists()
    assert not live.filter(object_name="OpportunityContactRole").exists()
    again = org.call("DELETE", f"{V}/sobjects/Account/{acme.crm_id}")
    assert again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


# --- sharing and field-level security ---------------------------------------------------------


def test_sharing_hides_other_owners_records_from_reads_and_writes(org):
    theirs = _deal(org, owner=org.admin, name="Theirs")
    mine = _deal(org, owner=org.rep, name="Mine")

    rows = org.call(
        "GET", V + "/query/", user=org.rep, params={"q": "SELECT Name FROM Opportunity"}
    )
    read = org.call("GET", f"{V}/sobjects/Opportunity/{theirs.crm_id}", user=org.rep)
    write = org.call(
        "PATCH",
        f"{V}/sobjects/Opportunity/{theirs.crm_id}",
        user=org.rep,
        json={"Name": "Mine now"},
    )

    assert [r["Name"] for r in rows.json()["records"]] == ["Mine"]
    assert rows.json()["totalSize"] == 1
    assert read.status_code == 404
    assert write.status_code == 400
    assert write.json() == [
        {
            "message": "insufficient access rights on object id",
            "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY",
        }
    ]
    assert org.call("GET", f"{V}/sobjects/Opportunity/{mine.crm_id}", user=org.rep).ok


def test_read_only_sharing_lets_a_user_read_but_not_change_a_record(org):
    viewer = seed.add_user(
        org.account,
        "val@seller.example",
        access=Access.OWNED,
        read_access=Access.ALL,  # the org-wide default for opportunities: Public Read Only
    )
    org.token_for(viewer)
    acme = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)
    theirs = _deal(org, owner=org.admin, name="Theirs")
    own = _deal(org, owner=viewer, name="Own")
    path = f"{V}/sobjects/Opportunity/{theirs.crm_id}"
    read_only = [
        {
            "message": "insufficient access rights on object id",
            "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY",
        }
    ]

    read = org.call("GET", path, user=viewer)
    rows = org.call(
        "GET",
        V + "/query/",
        user=viewer,
        params={"q": "SELECT Name FROM Opportunity ORDER BY Name"},
    )
    patched = org.call("PATCH", path, user=viewer, json={"NextStep": "Call"})
    deleted = org.call("DELETE", path, user=viewer)
    collection = org.call(
        "PATCH",
        V + "/composite/sobjects",
        user=viewer,
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Opportunity"}, "id": theirs.crm_id, "NextStep": "Call"},
                {"attributes": {"type": "Opportunity"}, "id": own.crm_id, "NextStep": "Call"},
            ],
        },
    )
    # A record it may read is a valid lookup target.
    contact = org.call(
        "POST",
        f"{V}/sobjects/Contact",
        user=viewer,
        json={"LastName": "Lee", "AccountId": acme.crm_id},
    )

    assert read.status_code == 200
    assert read.json()["Name"] == "Theirs"
    assert [r["Name"] for r in rows.json()["records"]] == ["Own", "Theirs"]
    assert (patched.status_code, patched.json()) == (400, read_only)
    assert (deleted.status_code, deleted.json()) == (400, read_only)
    assert collection.json() == [
        {
            "id": theirs.crm_id,
            "success": False,
            "errors": [
                {
                    "statusCode": "INSUFFICIENT_ACCESS_OR_READONLY",
                    "message": "insufficient access rights on object id",
                    "fields": [],
                }
            ],
        },
        {"id": own.crm_id, "success": True, "errors": []},
    ]
    assert contact.status_code == 201
    theirs.refresh_from_db()
    assert "NextStep" not in theirs.values
    assert theirs.deleted_at is None


def test_user_record_access_says_read_for_a_record_shared_read_only(org):
    viewer = seed.add_user(
        org.account, "val@seller.example", access=Access.OWNED, read_access=Access.ALL
    )
    theirs = _deal(org, owner=org.admin)
    soql = (
        "SELECT HasReadAccess, HasEditAccess, MaxAccessLevel FROM UserRecordAccess "
        f"WHERE UserId = '{viewer.crm_user_id}' AND RecordId = '{theirs.crm_id}'"
    )

    row = org.call("GET", V + "/query/", params={"q": soql}).json()["records"][0]

    assert (row["HasReadAccess"], row["HasEditAccess"], row["MaxAccessLevel"]) == (
        True,
        False,
        "Read",
    )


def test_field_level_security_hides_and_locks_fields_everywhere(org):
    deal = _deal(org, owner=org.rep)
    path = f"{V}/sobjects/Opportunity/{deal.crm_id}"

    record = org.call("GET", path, user=org.rep).json()
    hidden = org.call(
        "GET", V + "/query/", user=org.rep, params={"q": "SELECT NextStep FROM Opportunity"}
    )
    hidden_write = org.call("PATCH", path, user=org.rep, json={"NextStep": "x"})
    locked_write = org.call("PATCH", path, user=org.rep, json={"Amount": 1})

    assert "NextStep" not in record
    assert record["Amount"] == 50000
    assert hidden.status_code == 400
    assert hidden.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'NextStep' on entity 'Opportunity'" in hidden.json()[0]["message"]
    assert "fields" not in hidden.json()[0]
    assert hidden_write.json()[0]["errorCode"] == "INVALID_FIELD"
    assert locked_write.json()[0] == {
        "message": "Unable to create/update fields: Amount. Please check the security settings "
        "of this field and verify that it is read/write for your profile or permission set.",
        "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
        "fields": ["Amount"],
    }


def test_user_record_access_reports_each_users_level(org):
    theirs = _deal(org, owner=org.admin)
    mine = _deal(org, owner=org.rep)
    ids = ", ".join(f"'{record.crm_id}'" for record in (theirs, mine))

    def levels(user: SandboxUser) -> dict:
        soql = (
            "SELECT RecordId, HasReadAccess, HasEditAccess, MaxAccessLevel FROM UserRecordAccess "
            f"WHERE UserId = '{user.crm_user_id}' AND RecordId IN ({ids})"
        )
        rows = org.call("GET", V + "/query/", params={"q": soql}).json()["records"]
        return {row["RecordId"]: row["MaxAccessLevel"] for row in rows}

    too_many = ", ".join(f"'{store.salesforce_id('006', n)}'" for n in range(1, 202))
    refused = org.call(
        "GET",
        V + "/query/",
        params={
            "q": f"SELECT RecordId FROM UserRecordAccess WHERE UserId = "
            f"'{org.rep.crm_user_id}' AND RecordId IN ({too_many})"
        },
    )

    assert levels(org.admin) == {theirs.crm_id: "All", mine.crm_id: "Edit"}
    assert levels(org.rep) == {theirs.crm_id: "None", mine.crm_id: "All"}
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "MALFORMED_QUERY"


# --- queries -------------------------------------------------------------------------------


def test_query_nests_relationship_fields_with_their_own_attributes(org):
    acme = seed.add_record(org.account, "company", {"name": "Acme"}, owner=org.admin)
    deal = seed.add_record(
        org.account, "deal", {"name": "Big"}, owner=org.admin, associations=[acme]
    )

    body = org.call(
        "GET",
        V + "/query/",
        params={"q": "SELECT Id, Account.Name, Owner.Email FROM Opportunity"},
    ).json()

    assert body["done"] is True
    assert body["records"] == [
        {
            "attributes": {"type": "Opportunity", "url": f"{V}/sobjects/Opportunity/{deal.crm_id}"},
            "Id": deal.crm_id,
            "Account": {
                "attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{acme.crm_id}"},
                "Name": "Acme",
            },
            "Owner": {
                "attributes": {"type": "User", "url": f"{V}/sobjects/User/{org.admin.crm_user_id}"},
                "Email": "ada@seller.example",
            },
        }
    ]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id FROM Opportunity WHERE Amount = 'x'", "INVALID_FIELD"),
    ],
)
def test_query_errors_answer_400_with_the_soql_error_code(org, soql, code):
    response = org.call("GET", V + "/query/", params={"q": soql})

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_fields_the_describe_cannot_filter_or_sort_on_are_refused_as_salesforce_does(org):
    _deal(org, description="Long notes")
    described = org.call("GET", f"{V}/sobjects/Opportunity/describe").json()
    flags = {f["name"]: (f["filterable"], f["sortable"]) for f in described["fields"]}

    def query(soql: str):
        return org.call("GET", V + "/query/", params={"q": soql})

    filtered = query("SELECT Id FROM Opportunity WHERE Description = 'x'")
    sorted_ = query("SELECT Id FROM Opportunity ORDER BY Description")
    through_parent = query("SELECT Id FROM Contact WHERE Account.Description != null")
    selected = query("SELECT Description FROM Opportunity")

    assert flags["Description"] == (False, False)
    assert filtered.status_code == sorted_.status_code == through_parent.status_code == 400
    assert filtered.json() == [
        {
            "message": "\nSELECT Id FROM Opportunity WHERE Description = 'x'\n"
            + " " * 33
            + "^\nERROR at Row:1:Column:34\n"
            "field 'Description' can not be filtered in a query call",
            "errorCode": "INVALID_FIELD",
        }
    ]
    assert sorted_.json()[0]["message"].endswith(
        "field 'Description' can not be sorted in a query call"
    )
    assert through_parent.json()[0]["errorCode"] == "INVALID_FIELD"
    assert selected.json()["records"][0]["Description"] == "Long notes"


def test_query_pages_by_next_records_url_paths(org):
    rows = [({"Name": f"Deal {n:03d}", "StageName": "Prospecting"}, org.admin) for n in range(450)]
    store.bulk_create_records(org.account, "Opportunity", rows)
    soql = "SELECT Name FROM Opportunity ORDER BY Name"

    first = org.call(
        "GET", V + "/query/", params={"q": soql}, headers={"Sforce-Query-Options": "batchSize=200"}
    ).json()
    names = [r["Name"] for r in first["records"]]
    page = first
    while not page["done"]:
        assert LOCATOR_URL.fullmatch(page["nextRecordsUrl"])
        page = org.call("GET", page["nextRecordsUrl"]).json()
        names.extend(r["Name"] for r in page["records"])

    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert LOCATOR_URL.fullmatch(first["nextRecordsUrl"]).group(1) == "200"
    assert names == [f"Deal {n:03d}" for n in range(450)]
    default = org.call("GET", V + "/query/", params={"q": soql}).json()
    assert (default["done"], len(default["records"])) == (True, 450)
    unknown = org.call("GET", V + "/query/01g000000000000AAA-200")
    assert unknown.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_each_next_records_url_works_once_and_in_order(org):
    rows = [({"Name": f"Deal {n:03d}", "StageName": "Prospecting"}, org.admin) for n in range(650)]
    store.bulk_create_records(org.account, "Opportunity", rows)
    options = {"Sforce-Query-Options": "batchSize=200"}
    params = {"q": "SELECT Name FROM Opportunity ORDER BY Name"}

    first = org.call("GET", V + "/query/", params=params, headers=options).json()
    locator = first["nextRecordsUrl"].rpartition("-")[0]
    skipped = org.call("GET", f"{locator}-400", headers=options)
    rewound = org.call("GET", f"{locator}-150", headers=options)
    second = org.call("GET", first["nextRecordsUrl"], headers=options)
    again = org.call("GET", first["nextRecordsUrl"], headers=options)
    third = org.call("GET", second.json()["nextRecordsUrl"], headers=options).json()
    last = org.call("GET", third["nextRecordsUrl"], headers=options).json()
    after_the_end = org.call("GET", third["nextRecordsUrl"], headers=options)

    invalid = [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
    for refused in (skipped, rewound, again, after_the_end):
        assert refused.status_code == 400
        assert refused.json() == invalid
    # The refusals did not move the cursor: the URL handed out still works, once.
    assert [r["Name"] for r in second.json()["records"]][:1] == ["Deal 200"]
    assert LOCATOR_URL.fullmatch(third["nextRecordsUrl"]).group(1) == "600"
    assert (len(last["records"]), last["done"], "nextRecordsUrl" in last) == (50, True, False)


def test_query_answers_2000_records_per_batch_by_default(org):
    rows = [({"Name": f"D{n}", "StageName": "Prospecting"}, org.admin) for n in range(2100)]
    store.bulk_create_records(org.account, "Opportunity", rows)

    first = org.call("GET", V + "/query/", params={"q": "SELECT Id FROM Opportunity"}).json()
    rest = org.call("GET", first["nextRecordsUrl"]).json()

    assert (len(first["records"]), first["totalSize"]) == (2000, 2100)
    assert LOCATOR_URL.fullmatch(first["nextRecordsUrl"]).group(1) == "2000"
    assert (len(rest["records"]), rest["done"]) == (100, True)


def test_filters_compare_text_case_insensitively_and_ids_by_15_characters(org):
    acme = seed.add_record(
        org.account, "company", {"name": "Acme", "domain": "https://www.ACME.example"}
    )
    jane = seed.add_record(
        org.account,
        "contact",
        {"last_name": "Ünal", "email": "Jane@Acme.Example"},
        associations=[acme],
    )

    def ids(soql: str) -> list[str]:
        return [
            r["Id"] for r in org.call("GET", V + "/query/", params={"q": soql}).json()["records"]
        ]

    assert ids("SELECT Id FROM Contact WHERE Email = 'jane@acme.example'") == [jane.crm_id]
    assert ids(f"SELECT Id FROM Contact WHERE AccountId = '{acme.crm_id[:15]}'") == [jane.crm_id]
    assert ids("SELECT Id FROM Account WHERE Website LIKE '%acme.example'") == [acme.crm_id]
    assert ids("SELECT Id FROM Contact WHERE Email IN ('x@y.example', 'JANE@ACME.EXAMPLE')") == [
        jane.crm_id
    ]
    assert ids("SELECT Id FROM Contact WHERE LastName = 'ünal'") == [jane.crm_id]
    assert ids("SELECT Id FROM Contact WHERE Email != 'jane@acme.example'") == []


def test_a_user_keeps_at_most_ten_query_locators(org):
    rows = [({"Name": f"D{n}", "StageName": "Prospecting"}, org.admin) for n in range(201)]
    store.bulk_create_records(org.account, "Opportunity", rows)
    options = {"Sforce-Query-Options": "batchSize=200"}
    soql = {"q": "SELECT Id FROM Opportunity"}

    urls = [
        org.call("GET", V + "/query/", params=soql, headers=options).json()["nextRecordsUrl"]
        for _ in range(11)
    ]

    assert org.call("GET", urls[0]).json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert len(org.call("GET", urls[1]).json()["records"]) == 1
    assert org.call("GET", urls[10], user=org.rep).json()[0]["errorCode"] == (
        "INVALID_QUERY_LOCATOR"
    )


def test_count_query_all_stages_and_users(org):
    deal = _deal(org)
    org.call("DELETE", f"{V}/sobjects/Opportunity/{deal.crm_id}")

    count = org.call("GET", V + "/query/", params={"q": "SELECT COUNT() FROM Opportunity"})
    with_deleted = org.call(
        "GET", V + "/queryAll/", params={"q": "SELECT Id, IsDeleted FROM Opportunity"}
    )
    stages = org.call(
        "GET",
        V + "/query/",
        params={"q": "SELECT ApiName, IsClosed, IsWon FROM OpportunityStage ORDER BY SortOrder"},
    )
    users = org.call(
        "GET",
        V + "/query/",
        params={"q": "SELECT Email, Department FROM User WHERE IsActive = true"},
    )

    assert count.json() == {"totalSize": 0, "done": True, "records": []}
    assert [r["IsDeleted"] for r in with_deleted.json()["records"]] == [True]
    rows = {r["ApiName"]: (r["IsClosed"], r["IsWon"]) for r in stages.json()["records"]}
    assert rows["Closed Won"] == (True, True)
    assert rows["Closed Lost"] == (True, False)
    assert rows["Prospecting"] == (False, False)
    assert {(r["Email"], r["Department"]) for r in users.json()["records"]} == {
        ("ada@seller.example", None),
        ("riley@seller.example", "East"),
    }


# --- collections -----------------------------------------------------------------------------


def test_collections_answer_save_results_with_status_codes(org):
    deals = [_deal(org, name=f"D{n}") for n in range(2)]
    records = [
        {"attributes": {"type": "Opportunity"}, "id": deals[0].crm_id, "NextStep": "Call"},
        {"attributes": {"type": "Opportunity"}, "id": deals[1].crm_id, "Nope__c": "x"},
        {"attributes": {"type": "Opportunity"}, "NextStep": "Call"},
    ]

    response = org.call(
        "PATCH", V + "/composite/sobjects", json={"allOrNone": False, "records": records}
    )

    assert response.status_code == 200
    ok, bad, no_id = response.json()
    assert ok == {"id": deals[0].crm_id, "success": True, "errors": []}
    assert bad["success"] is False
    assert bad["errors"] == [
        {
            "statusCode": "INVALID_FIELD",
            "message": "No such column 'Nope__c' on sobject of type Opportunity",
            "fields": [],
        }
    ]
    assert no_id["errors"][0]["statusCode"] == "MISSING_ARGUMENT"


def test_collections_roll_back_everything_with_all_or_none(org):
    deal = _deal(org)
    records = [
        {"attributes": {"type": "Opportunity"}, "id": deal.crm_id, "NextStep": "Call"},
        {"attributes": {"type": "Opportunity"}, "id": deal.crm_id, "Amount": "lots"},
    ]

    body = org.call(
        "PATCH", V + "/composite/sobjects", json={"allOrNone": True, "records": records}
    ).json()

    assert body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert body[1]["errors"][0]["statusCode"] == "JSON_PARSER_ERROR"
    deal.refresh_from_db()
    assert "NextStep" not in deal.values
    assert SandboxRequest.objects.get(path=V + "/composite/sobjects").written == {}


def test_collections_refuse_more_than_200_records_and_read_by_ids(org):
    deal = _deal(org)
    records = [{"attributes": {"type": "Opportunity"}, "Name": "x"}] * 201
    missing = store.salesforce_id("006", 62**8)

    too_many = org.call("POST", V + "/composite/sobjects", json={"records": records})
    read = org.call(
        "GET",
        V + "/composite/sobjects/Opportunity",
        params={"ids": f"{deal.crm_id},{missing}", "fields": "Name"},
    )

    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    first, second = read.json()
    assert (first["Name"], first["Id"], second) == ("Acme platform", deal.crm_id, None)


# --- limits and faults -------------------------------------------------------------------------


def test_the_daily_limit_answers_403_request_limit_exceeded(org):
    org.account.daily_limit = 2
    org.account.save()

    statuses = [org.call("GET", V + "/limits/") for _ in range(3)]

    assert [r.status_code for r in statuses] == [200, 200, 403]
    assert statuses[2].json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert statuses[2].headers["Sforce-Limit-Info"] == "api-usage=3/2"


def test_requests_beyond_the_concurrent_limit_answer_403_until_one_ends(org):
    org.account.concurrent_limit = 2
    org.account.latency_ms = 700  # keeps each request in flight
    org.account.save()

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: org.call("GET", V + "/limits/"), range(3)))
    org.account.latency_ms = 0
    org.account.save()
    after = org.call("GET", V + "/limits/")

    assert sorted(answer.status_code for answer in answers) == [200, 200, 403]
    refused = next(answer for answer in answers if answer.status_code == 403)
    assert refused.json() == [
        {
            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    assert after.status_code == 200  # it clears as soon as a request ends
    # The refusal is no API request of the daily quota.
    assert after.headers["Sforce-Limit-Info"] == "api-usage=3/100000"


def test_a_concurrent_limit_of_zero_is_no_limit(org):
    org.account.concurrent_limit = 0
    org.account.latency_ms = 300
    org.account.save()

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: org.call("GET", V + "/limits/"), range(4)))

    assert [answer.status_code for answer in answers] == [200] * 4


def test_injected_errors_answer_503_in_salesforces_shape(org):
    org.account.error_rate = 1.0
    org.account.save()

    response = org.call("GET", V + "/sobjects")

    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_dropped_connections_and_timeouts_fail_the_client(org):
    org.account.drop_rate = 1.0
    org.account.save()
    with pytest.raises(requests.RequestException):
        org.call("GET", V + "/sobjects", timeout=1).json()

    org.account.drop_rate = 0
    org.account.timeout_rate = 1.0
    org.account.timeout_seconds = 1.0
    org.account.save()
    with pytest.raises(requests.Timeout):
        org.call("GET", V + "/sobjects", timeout=0.3)
    _wait_for_log(status=504)  # the server is still answering: let it finish inside the test


def _wait_for_log(**match: object) -> None:
    deadline = time.monotonic() + 5
    while not SandboxRequest.objects.filter(**match).exists():
        assert time.monotonic() < deadline, f"no request logged with {match}"
        time.sleep(0.05)


def test_the_request_log_records_reads_and_writes(org):
    deal = _deal(org)
    org.call("GET", f"{V}/sobjects/Opportunity/{deal.crm_id}")
    org.call("GET", V + "/query/", params={"q": "SELECT Id FROM Opportunity"})
    org.call("PATCH", f"{V}/sobjects/Opportunity/{deal.crm_id}", json={"Name": "X"})

    logs = list(SandboxRequest.objects.filter(account=org.account).order_by("pk"))

    assert [(log.method, log.kind, log.status) for log in logs] == [
        ("GET", "read", 200),
        ("GET", "search", 200),
        ("PATCH", "write", 204),
    ]
    assert all(log.user == org.admin and log.provider == "salesforce" for log in logs)
    assert logs[1].record_ids == [deal.crm_id]
    assert "q=SELECT" in logs[1].query
    assert logs[2].written == {deal.crm_id: {"Name": "X"}}


# --- OAuth -----------------------------------------------------------------------------------


def test_the_token_endpoint_refreshes_and_refuses_bad_grants(org):
    pair = seed.issue_token(org.admin, expires_in=timedelta(seconds=-1), refresh=True)
    url = org.url + "/services/oauth2/token"

    refreshed = requests.post(
        url, data={"grant_type": "refresh_token", "refresh_token": pair.refresh_token}, timeout=10
    )
    bad = requests.post(url, data={"grant_type": "refresh_token", "refresh_token": "x"}, timeout=10)
    code = requests.post(url, data={"grant_type": "authorization_code", "code": "x"}, timeout=10)

    assert refreshed.status_code == 200
    body = refreshed.json()
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert (body["token_type"], body["instance_url"]) == ("Bearer", org.url)
    assert body["id"].endswith(f"/id/{org.account.external_id}/{org.admin.crm_user_id}")
    works = requests.get(
        org.url + V + "/limits/",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert works.status_code == 200
    assert SandboxToken.objects.get(pk=pair.pk).expires_at > store.now()
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )
    assert (code.status_code, code.json()["error"]) == (400, "invalid_grant")


# --- through simple-salesforce ---------------------------------------------------------------


def test_simple_salesforce_works_unchanged(org):
    sf = org.sf()
    deal = _deal(org)

    record = sf.Opportunity.get(deal.crm_id)
    created = sf.Contact.create({"LastName": "Lee", "Email": "lee@acme.example"})
    status = sf.Contact.update(created["id"], {"Title": "CTO"})
    everything = sf.query_all("SELECT Id, Name FROM Opportunity")
    described = sf.Opportunity.describe()

    assert record["Name"] == "Acme platform"
    assert created["success"] is True
    assert status == 204
    assert everything["totalSize"] == 1
    assert described["name"] == "Opportunity"
    assert sf.describe()["maxBatchSize"] == 200
    assert sf.api_usage["api-usage"] == Usage(used=6, total=100000)
    assert sf.restful(f"sobjects/Contact/{created['id']}", params={"fields": "Title"})["Title"] == (
        "CTO"
    )


def test_simple_salesforce_query_all_follows_next_records_urls(org):
    rows = [({"Name": f"D{n}", "StageName": "Prospecting"}, org.admin) for n in range(450)]
    store.bulk_create_records(org.account, "Opportunity", rows)

    result = org.sf().query_all(
        "SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=200"}
    )

    assert len(result["records"]) == 450
    assert SandboxRequest.objects.filter(kind="search").count() == 3


def test_simple_salesforce_raises_its_own_exceptions(org):
    deal = _deal(org)
    sf = org.sf()
    earlier = format_datetime(deal.updated_at - timedelta(seconds=5), usegmt=True)

    with pytest.raises(SalesforceGeneralError) as precondition:
        sf.Opportunity.update(deal.crm_id, {"Name": "x"}, headers={"If-Unmodified-Since": earlier})
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT FROM")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.get(store.salesforce_id("006", 62**8))
    with pytest.raises(SalesforceExpiredSession):
        Salesforce(
            instance_url=org.url, session_id="bad", session=session_for(org.url, timeout=5)
        ).query("SELECT Id FROM Account")
    org.account.daily_limit = 1
    org.account.save()
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account")

    assert precondition.value.status == 412
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert json.loads(json.dumps(malformed.value.content))  # the array body, parsed
