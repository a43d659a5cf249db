"""The HubSpot sandbox answers as HubSpot does (reference/crm-apis.md PART A and PART C):
paths, status codes, bodies, headers and gotchas, pinned with raw HTTP calls."""

import json
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests

from integrations.sandbox import seed, store
from integrations.sandbox.hubspot import associations
from integrations.sandbox.models import (
    SandboxAccount,
    SandboxRecord,
    SandboxRequest,
    SandboxToken,
    SandboxUser,
)

CONTENT_TYPE = "application/json;charset=utf-8"
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
)


@dataclass
class Portal:
    url: str
    account: SandboxAccount
    user: SandboxUser
    token: str

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 5)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: object, **kwargs):
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: object, **kwargs):
        return self.call("PATCH", path, json=body, **kwargs)

    def add(self, object_type: str, fields: dict, **kwargs) -> SandboxRecord:
        kwargs.setdefault("owner", self.user)
        return seed.add_record(self.account, object_type, fields, **kwargs)

    def limit(self, **settings: float) -> None:
        for name, value in settings.items():
            setattr(self.account, name, value)
        self.account.save()


@pytest.fixture
def portal(sandbox_server) -> Portal:
    account = seed.create_account("hubspot", "Contract Portal", external_id="62515")
    user = seed.add_user(
        account, "ops@seller.example", first_name="Avery", last_name="Admin", team="West"
    )
    return Portal(sandbox_server.url, account, user, seed.issue_token(user).access_token)


def _error(response) -> dict:
    body = response.json()
    assert body["status"] == "error"
    assert body["correlationId"] == response.headers["X-HubSpot-Correlation-Id"]
    return body


# --- transport -----------------------------------------------------------------------------


def test_every_answer_is_json_with_a_correlation_id_and_burst_headers(portal):
    response = portal.get("/crm/v3/objects/contacts")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.headers["X-HubSpot-Correlation-Id"]
    assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "189"
    # A private-app token also sees its daily quota.
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
    assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "999999"


def test_oauth_calls_get_no_daily_headers_and_search_gets_none_at_all(portal):
    oauth = seed.issue_token(portal.user, expires_in=timedelta(minutes=30), refresh=True)

    listed = portal.get("/crm/v3/objects/deals", token=oauth.access_token)
    searched = portal.post("/crm/v3/objects/deals/search", {})

    assert "X-HubSpot-RateLimit-Daily" not in listed.headers
    assert "X-HubSpot-RateLimit-Max" in listed.headers
    assert searched.status_code == 200
    assert not [name for name in searched.headers if name.startswith("X-HubSpot-RateLimit")]
    assert searched.headers["X-HubSpot-Correlation-Id"]


def test_a_missing_or_unknown_token_is_invalid_authentication(portal):
    response = requests.get(portal.url + "/crm/v3/objects/deals", timeout=5)
    unknown = portal.get("/crm/v3/objects/deals", token="pat-na1-nope")

    for answer in (response, unknown):
        assert answer.status_code == 401
        body = _error(answer)
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found.")


def test_an_expired_oauth_token_says_how_long_ago(portal):
    expired = seed.issue_token(portal.user, expires_in=timedelta(seconds=-7), refresh=True)

    response = portal.get("/crm/v3/objects/deals", token=expired.access_token)

    assert response.status_code == 401
    body = _error(response)
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired 7 second")


def test_a_token_without_the_scope_gets_missing_scopes(portal):
    deal = portal.add("deal", {"name": "Acme"})
    reader = seed.issue_token(portal.user, scopes=["crm.objects.deals.read"])

    read = portal.get(f"/crm/v3/objects/deals/{deal.crm_id}", token=reader.access_token)
    write = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        {"properties": {"dealname": "x"}},
        token=reader.access_token,
    )

    assert read.status_code == 200
    assert write.status_code == 403
    body = _error(write)
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"] == {"requiredGranularScopes": ["crm.objects.deals.write"]}


# --- objects: read -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "path", "defaults"),
    [
        (
            "contact",
            "contacts",
            {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"},
        ),
        (
            "company",
            "companies",
            {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"},
        ),
        (
            "deal",
            "deals",
            {
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            },
        ),
    ],
)
def test_get_by_id_answers_the_default_properties(portal, object_type, path, defaults):
    record = portal.add(object_type, {"name": "Acme"} if object_type != "contact" else {})

    body = portal.get(f"/crm/v3/objects/{path}/{record.crm_id}").json()

    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert set(body["properties"]) == defaults
    assert body["properties"]["hs_object_id"] == record.crm_id
    assert body["archived"] is False
    assert body["createdAt"].endswith("Z")
    assert len(body["createdAt"]) == 24


def test_requested_properties_come_with_the_system_ones_and_nulls(portal):
    deal = portal.add("deal", {"name": "Acme", "amount": 1500, "stage": "qualifiedtobuy"})

    body = portal.get(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        params={"properties": "amount,hs_next_step,no_such_property"},
    ).json()

    assert body["properties"] == {
        "amount": "1500",
        "hs_next_step": None,
        "createdate": body["createdAt"],
        "hs_object_id": deal.crm_id,
        "hs_lastmodifieddate": body["updatedAt"],
    }


def test_repeated_and_comma_separated_array_params_are_the_same(portal):
    contact = portal.add("contact", {"first_name": "Jane", "email": "jane@acme.example"})
    path = f"/crm/v3/objects/contacts/{contact.crm_id}"

    repeated = portal.get(path + "?properties=firstname&properties=email&properties=jobtitle")
    comma = portal.get(path + "?properties=firstname,email,jobtitle")
    mixed = portal.get(path + "?properties=firstname,email&properties=jobtitle")

    assert repeated.json()["properties"] == comma.json()["properties"]
    assert comma.json()["properties"] == mixed.json()["properties"]
    assert repeated.json()["properties"]["lastmodifieddate"]  # contacts' own name for it


def test_deals_answer_by_object_type_id_too(portal):
    deal = portal.add("deal", {"name": "Acme"})

    by_id = portal.get(f"/crm/v3/objects/0-3/{deal.crm_id}")

    assert by_id.status_code == 200
    assert by_id.json()["properties"]["dealname"] == "Acme"


def test_property_history_comes_newest_first_with_its_source(portal):
    deal = portal.add("deal", {"name": "Acme", "amount": 100})
    store.update_record(
        deal,
        {"amount": "200"},
        source_type="CRM_UI",
        source_id=f"userId:{portal.user.crm_user_id}",
        at=store.now() + timedelta(seconds=5),
    )

    body = portal.get(
        f"/crm/v3/objects/deals/{deal.crm_id}", params={"propertiesWithHistory": "amount"}
    ).json()

    history = body["propertiesWithHistory"]["amount"]
    assert [entry["value"] for entry in history] == ["200", "100"]
    assert history[0]["sourceType"] == "CRM_UI"
    assert history[0]["sourceId"] == f"userId:{portal.user.crm_user_id}"
    assert history[0]["updatedByUserId"] == int(portal.user.crm_user_id)
    assert history[0]["timestamp"] > history[1]["timestamp"]


def test_a_contact_can_be_read_by_email(portal):
    jane = portal.add("contact", {"email": "jane@acme.example"})

    response = portal.get("/crm/v3/objects/contacts/Jane@Acme.example?idProperty=email")
    batch = portal.post(
        "/crm/v3/objects/contacts/batch/read",
        {"inputs": [{"id": "jane@acme.example"}], "idProperty": "email"},
    )

    assert response.status_code == 200
    assert response.json()["id"] == jane.crm_id
    assert [result["id"] for result in batch.json()["results"]] == [jane.crm_id]


def test_an_unknown_numeric_id_is_a_404_without_category(portal):
    response = portal.get("/crm/v3/objects/deals/987654")

    assert response.status_code == 404
    body = _error(response)
    assert body["message"] == "resource not found"
    assert "category" not in body


def test_a_non_numeric_id_is_object_not_found(portal):
    response = portal.get("/crm/v3/objects/deals/acme")

    assert response.status_code == 404
    body = _error(response)
    assert body["message"] == "Object not found.  objectId are usually numeric."
    assert body["category"] == "OBJECT_NOT_FOUND"


def test_an_unknown_object_type_is_a_validation_error(portal):
    response = portal.get("/crm/v3/objects/widgets/1")

    assert response.status_code == 400
    assert _error(response)["category"] == "VALIDATION_ERROR"


def test_the_list_pages_with_after_and_a_link(portal):
    deals = [portal.add("deal", {"name": f"Deal {i}"}) for i in range(3)]

    first = portal.get("/crm/v3/objects/deals", params={"limit": 2}).json()
    after = first["paging"]["next"]["after"]
    second = portal.get("/crm/v3/objects/deals", params={"limit": 2, "after": after}).json()

    assert [r["id"] for r in first["results"]] == [d.crm_id for d in deals[:2]]
    assert "after=" in first["paging"]["next"]["link"]
    assert [r["id"] for r in second["results"]] == [deals[2].crm_id]
    assert "paging" not in second


def test_the_associations_map_lists_each_association_type(portal):
    acme = portal.add("company", {"name": "Acme"})
    jane = portal.add("contact", {"email": "jane@acme.example"}, associations=[acme])

    body = portal.get(
        f"/crm/v3/objects/contacts/{jane.crm_id}", params={"associations": "companies,deals"}
    ).json()

    assert body["associations"] == {
        "companies": {"results": [{"id": acme.crm_id, "type": "contact_to_company_unlabeled"}]}
    }


def test_a_contacts_primary_company_id_is_kept_from_its_associations(portal):
    acme = portal.add("company", {"name": "Acme"})
    globex = portal.add("company", {"name": "Globex"})
    jane = portal.add("contact", {"email": "jane@acme.example"}, associations=[acme, globex])
    loner = portal.add("contact", {"email": "loner@nowhere.example"})
    wanted = {"properties": "associatedcompanyid"}

    read = portal.get(f"/crm/v3/objects/contacts/{jane.crm_id}", params=wanted).json()
    listed = portal.get("/crm/v3/objects/contacts", params=wanted).json()["results"]
    batch = portal.post(
        "/crm/v3/objects/contacts/batch/read",
        {"inputs": [{"id": jane.crm_id}], "properties": ["associatedcompanyid"]},
    ).json()["results"]
    found = portal.post(
        "/crm/v3/objects/contacts/search",
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "associatedcompanyid",
                            "operator": "EQ",
                            "value": acme.crm_id,
                        }
                    ]
                }
            ],
            "properties": ["associatedcompanyid"],
        },
    ).json()

    assert read["properties"]["associatedcompanyid"] == acme.crm_id
    assert {r["id"]: r["properties"]["associatedcompanyid"] for r in listed} == {
        jane.crm_id: acme.crm_id,
        loner.crm_id: None,
    }
    assert batch[0]["properties"]["associatedcompanyid"] == acme.crm_id
    assert [r["id"] for r in found["results"]] == [jane.crm_id]
    assert found["results"][0]["properties"]["associatedcompanyid"] == acme.crm_id


def test_the_primary_label_moves_the_primary_company_and_dissociating_clears_it(portal):
    acme = portal.add("company", {"name": "Acme"})
    globex = portal.add("company", {"name": "Globex"})
    jane = portal.add("contact", {"email": "jane@acme.example"}, associations=[acme, globex])
    path = f"/crm/v4/objects/contacts/{jane.crm_id}/associations/companies"

    def primary() -> str | None:
        body = portal.post(
            "/crm/v3/objects/contacts/search", {"properties": ["associatedcompanyid"]}
        ).json()
        return body["results"][0]["properties"]["associatedcompanyid"]

    portal.call(
        "PUT",
        f"{path}/{globex.crm_id}",
        json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
    )
    labelled = primary()
    portal.call("DELETE", f"{path}/{globex.crm_id}")
    portal.call("DELETE", f"{path}/{acme.crm_id}")

    assert labelled == globex.crm_id
    assert primary() is None


def test_the_primary_company_id_is_a_read_only_number_property(portal):
    jane = portal.add("contact", {"email": "jane@acme.example"})

    spec = portal.get("/crm/v3/properties/contacts/associatedcompanyid").json()
    written = portal.patch(
        f"/crm/v3/objects/contacts/{jane.crm_id}", {"properties": {"associatedcompanyid": "1"}}
    )

    assert (spec["label"], spec["type"], spec["fieldType"]) == (
        "Primary associated company ID",
        "number",
        "number",
    )
    assert spec["modificationMetadata"]["readOnlyValue"] is True
    assert written.status_code == 400
    assert written.json()["errors"][0]["code"] == "READ_ONLY_VALUE"


# --- objects: write ------------------------------------------------------------------------


def test_create_answers_201_and_associates(portal):
    acme = portal.add("company", {"name": "Acme"})

    response = portal.post(
        "/crm/v3/objects/deals",
        {
            "properties": {"dealname": "New deal", "amount": "1200.50", "dealstage": "closedwon"},
            "associations": [
                {
                    "to": {"id": acme.crm_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}],
                }
            ],
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["properties"]["amount"] == "1200.5"
    assert body["properties"]["pipeline"] == "default"
    assert {"createdate", "hs_object_id", "hs_lastmodifieddate"} <= set(body["properties"])
    links = portal.get(f"/crm/v4/objects/deals/{body['id']}/associations/companies").json()
    assert links["results"][0]["toObjectId"] == int(acme.crm_id)
    read = portal.get(
        f"/crm/v3/objects/deals/{body['id']}", params={"properties": "hs_is_closed_won"}
    )
    assert read.json()["properties"]["hs_is_closed_won"] == "true"


def test_an_update_lists_every_invalid_property_and_writes_nothing(portal):
    deal = portal.add("deal", {"name": "Acme", "amount": 100})

    response = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        {
            "properties": {
                "dealname": "Renamed",
                "no_such_thing": "x",
                "hs_lastmodifieddate": "2024-01-01",
                "dealstage": "signed",
                "amount": "lots",
                "closedate": "next week",
            }
        },
    )

    assert response.status_code == 400
    body = _error(response)
    assert body["category"] == "VALIDATION_ERROR"
    codes = {error["context"]["propertyName"][0]: error["code"] for error in body["errors"]}
    assert codes == {
        "no_such_thing": "PROPERTY_DOESNT_EXIST",
        "hs_lastmodifieddate": "READ_ONLY_VALUE",
        "dealstage": "INVALID_OPTION",
        "amount": "INVALID_LONG",
        "closedate": "INVALID_DATE",
    }
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    listed = json.loads(body["message"][len(prefix) :])
    assert listed[0] == {
        "isValid": False,
        "message": 'Property "no_such_thing" does not exist',
        "error": "PROPERTY_DOESNT_EXIST",
        "name": "no_such_thing",
        "localizedErrorMessage": 'Property "no_such_thing" does not exist',
        "portalId": 62515,
    }
    stage_error = next(e for e in body["errors"] if e["code"] == "INVALID_OPTION")
    assert stage_error["message"].startswith(
        'signed was not one of the allowed options: [label: "Appointment Scheduled"\n'
        'value: "appointmentscheduled"\ndisplay_order: 0\n'
    )
    deal.refresh_from_db()
    assert deal.values["dealname"] == "Acme"


def test_an_empty_string_clears_a_value(portal):
    deal = portal.add("deal", {"name": "Acme", "next_step": "Call"})

    response = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}", {"properties": {"hs_next_step": ""}}
    )

    assert response.status_code == 200
    assert response.json()["properties"]["hs_next_step"] == ""
    read = portal.get(f"/crm/v3/objects/deals/{deal.crm_id}?properties=hs_next_step")
    assert read.json()["properties"]["hs_next_step"] is None


def test_written_values_are_stored_as_hubspot_strings(portal):
    seed.add_custom_field(portal.account, "deal", "kickoff", "date")
    deal = portal.add("deal", {"name": "Acme"})
    midnight = "1735603200000"  # 2024-12-31T00:00:00Z

    response = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        {"properties": {"amount": 1500.0, "closedate": midnight, "kickoff": midnight}},
    )
    not_midnight = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}", {"properties": {"kickoff": "1735603200001"}}
    )

    assert response.json()["properties"]["amount"] == "1500"
    assert response.json()["properties"]["closedate"] == "2024-12-31T00:00:00.000Z"
    assert response.json()["properties"]["kickoff"] == "2024-12-31"
    assert not_midnight.status_code == 400
    assert "not midnight" in not_midnight.json()["errors"][0]["message"]


def test_a_second_contact_with_the_same_email_is_a_conflict(portal):
    jane = portal.add("contact", {"email": "jane@acme.example"})

    response = portal.post(
        "/crm/v3/objects/contacts", {"properties": {"email": "JANE@acme.example"}}
    )

    assert response.status_code == 409
    body = _error(response)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {jane.crm_id}"


def test_archive_answers_204_and_hides_the_record_but_archived_finds_it(portal):
    deal = portal.add("deal", {"name": "Acme"})

    deleted = portal.call("DELETE", f"/crm/v3/objects/deals/{deal.crm_id}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert portal.get(f"/crm/v3/objects/deals/{deal.crm_id}").status_code == 404
    archived = portal.get(f"/crm/v3/objects/deals/{deal.crm_id}?archived=true").json()
    assert archived["archived"] is True
    assert archived["archivedAt"]
    assert portal.post("/crm/v3/objects/deals/search", {}).json()["total"] == 0


# --- batch ---------------------------------------------------------------------------------


def test_batch_read_with_unknown_ids_is_a_207(portal):
    deal = portal.add("deal", {"name": "Acme"})

    response = portal.post(
        "/crm/v3/objects/deals/batch/read",
        {"inputs": [{"id": deal.crm_id}, {"id": "99999"}], "properties": ["dealname"]},
    )

    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert [result["id"] for result in body["results"]] == [deal.crm_id]
    assert body["numErrors"] == 1
    assert body["errors"][0] == {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some DEAL objects, they may be deleted or not exist. "
        "Check that ids are valid.",
        "context": {"ids": ["99999"]},
        "errors": [],
        "links": {},
    }
    assert body["startedAt"]
    assert body["completedAt"]


def test_batches_are_limited_to_100_inputs_or_50_with_history(portal):
    inputs = [{"id": str(n)} for n in range(51)]

    with_history = portal.post(
        "/crm/v3/objects/deals/batch/read",
        {"inputs": inputs, "propertiesWithHistory": ["amount"]},
    )
    too_many = portal.post(
        "/crm/v3/objects/deals/batch/update",
        {"inputs": [{"id": str(n), "properties": {}} for n in range(101)]},
    )

    assert with_history.status_code == 400
    assert _error(with_history)["message"] == (
        "The maximum number of inputs supported in a batch request for property histories is "
        "50. Please reduce the number of items and try again"
    )
    assert too_many.status_code == 400
    assert _error(too_many)["category"] == "VALIDATION_ERROR"


def test_batch_update_writes_each_record_and_reports_missing_ones(portal):
    first, second = portal.add("deal", {"name": "One"}), portal.add("deal", {"name": "Two"})

    response = portal.post(
        "/crm/v3/objects/deals/batch/update",
        {
            "inputs": [
                {"id": first.crm_id, "properties": {"hs_next_step": "Call"}},
                {"id": second.crm_id, "properties": {"amount": "10"}},
                {"id": "99999", "properties": {"amount": "10"}},
            ]
        },
    )

    assert response.status_code == 207
    body = response.json()
    assert sorted(result["id"] for result in body["results"]) == [first.crm_id, second.crm_id]
    assert body["errors"][0]["context"] == {"ids": ["99999"]}
    first.refresh_from_db()
    assert first.values["hs_next_step"] == "Call"


def test_batch_create_answers_201(portal):
    response = portal.post(
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": f"p{n}@acme.example"}} for n in range(3)]},
    )

    assert response.status_code == 201
    assert len(response.json()["results"]) == 3
    assert response.json()["status"] == "COMPLETE"


# --- malformed bodies ----------------------------------------------------------------------

STRING_LIST = "java.util.ArrayList<java.lang.String>"
CORE = "com.hubspot.inbounddb.publicobject.core.v2"


def _raw(portal: Portal, method: str, path: str, body: str | bytes, **headers: str):
    headers = {"Content-Type": "application/json", **headers}
    return portal.call(method, path, data=body, headers=headers)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/crm/v3/objects/deals/batch/read",
            '{"inputs": [{"id": "1"}], "properties": "dealname"}',
            f"Invalid input JSON on line 1, column 41: Cannot deserialize value of type "
            f'`{STRING_LIST}` from String value ("dealname")',
        ),
        (
            "/crm/v3/objects/deals/batch/read",
            '{"inputs": [{"id": "1"}], "propertiesWithHistory": {"amount": true}}',
            "Invalid input JSON on line 1, column 52: Cannot deserialize value of type "
            f"`{STRING_LIST}` from Object value (token `JsonToken.START_OBJECT`)",
        ),
        (
            "/crm/v3/objects/deals/batch/read",
            '{"inputs": [{"id": {"value": "1"}}]}',
            "Invalid input JSON on line 1, column 20: Cannot deserialize value of type "
            "`java.lang.String` from Object value (token `JsonToken.START_OBJECT`)",
        ),
        (
            "/crm/v3/objects/deals/batch/update",
            '{"inputs": [{"id": "1", "idProperty": {"name": "x"}, "properties": {}}]}',
            "Invalid input JSON on line 1, column 39: Cannot deserialize value of type "
            "`java.lang.String` from Object value (token `JsonToken.START_OBJECT`)",
        ),
        (
            "/crm/v3/objects/deals/batch/update",
            '{"inputs": [{"id": "1", "properties": null}]}',
            "Invalid input JSON on line 1, column 43: Cannot build SimplePublicObjectBatchInput, "
            "some of required attributes are not set [properties]",
        ),
        (
            "/crm/v3/objects/deals/batch/create",
            '{"inputs": ["dealname"]}',
            "Invalid input JSON on line 1, column 13: Cannot deserialize value of type "
            f'`{CORE}.SimplePublicObjectInputForCreate` from String value ("dealname")',
        ),
        (
            "/crm/v3/objects/deals",
            '{"properties": null}',
            "Invalid input JSON on line 1, column 20: Cannot build "
            "SimplePublicObjectInputForCreate, some of required attributes are not set "
            "[properties]",
        ),
        (
            "/crm/v3/objects/deals",
            '{"properties": {"dealname": ["Acme"]}}',
            "Invalid input JSON on line 1, column 29: Cannot deserialize value of type "
            "`java.lang.String` from Array value (token `JsonToken.START_ARRAY`)",
        ),
        (
            "/crm/v3/objects/deals",
            '{"properties": {}, "associations": [{"to": {"id": [1]}, "types": []}]}',
            "Invalid input JSON on line 1, column 51: Cannot deserialize value of type "
            "`java.lang.String` from Array value (token `JsonToken.START_ARRAY`)",
        ),
        (
            "/crm/v4/associations/deals/companies/batch/read",
            '{"inputs": [{"id": {"id": "1"}}]}',
            "Invalid input JSON on line 1, column 20: Cannot deserialize value of type "
            "`java.lang.String` from Object value (token `JsonToken.START_OBJECT`)",
        ),
        (
            "/crm/v3/objects/deals",
            '{"properties": {',
            "Invalid input JSON on line 1, column 17: Expecting property name enclosed in "
            "double quotes",
        ),
        (
            "/crm/v3/objects/deals/batch/read",
            "",
            "Invalid input JSON on line 1, column 1: No content to map due to end-of-input",
        ),
    ],
)
def test_a_body_of_the_wrong_shape_is_hubspots_400(portal, path, body, message):
    response = _raw(portal, "POST", path, body)

    assert response.status_code == 400
    error = _error(response)
    assert error["category"] == "VALIDATION_ERROR"
    assert error["message"] == message
    assert not SandboxRecord.objects.filter(account=portal.account).exists()


def test_an_update_needs_its_properties_as_an_object(portal):
    deal = portal.add("deal", {"name": "Acme"})
    path = f"/crm/v3/objects/deals/{deal.crm_id}"

    missing = _raw(portal, "PATCH", path, "{}")
    listed = _raw(portal, "PATCH", path, '{"properties": [["dealname", "x"]]}')

    assert (missing.status_code, listed.status_code) == (400, 400)
    assert _error(missing)["message"] == (
        "Invalid input JSON on line 1, column 2: Cannot build SimplePublicObjectInput, some of "
        "required attributes are not set [properties]"
    )
    assert _error(listed)["message"] == (
        "Invalid input JSON on line 1, column 16: Cannot deserialize value of type "
        "`java.util.LinkedHashMap<java.lang.String,java.lang.String>` from Array value "
        "(token `JsonToken.START_ARRAY`)"
    )
    deal.refresh_from_db()
    assert deal.values["dealname"] == "Acme"


def test_numbers_and_booleans_are_read_into_strings_as_hubspot_reads_them(portal):
    deal = portal.add("deal", {"name": "Acme"})

    read = portal.post(
        "/crm/v3/objects/deals/batch/read",
        {"inputs": [{"id": int(deal.crm_id)}], "properties": ["dealname", 7]},
    )

    assert read.status_code == 200
    assert read.json()["results"][0]["properties"]["dealname"] == "Acme"


# Bodies a careless or hostile client sends; none may crash an endpoint.
_ODD_BODIES = (
    "null",
    "[]",
    "7",
    '"text"',
    "{}",
    '{"inputs": null}',
    '{"inputs": {}}',
    '{"inputs": [null]}',
    '{"inputs": [7]}',
    '{"inputs": [{}]}',
    '{"inputs": [{"id": null, "properties": {}}]}',
    '{"inputs": [{"id": [], "after": {}}]}',
    '{"inputs": [{"id": "1", "properties": {"a": {}}}]}',
    '{"inputs": [{"id": "1", "idProperty": {}, "properties": {}}]}',
    '{"inputs": [{"id": "1"}], "properties": 7, "idProperty": []}',
    '{"properties": 7, "associations": {}}',
    '{"properties": {}, "associations": [null]}',
    '{"properties": {}, "associations": [{"to": null, "types": null}]}',
    '{"properties": {}, "associations": [{"to": {"id": "1"}, "types": [7]}]}',
    '[{"associationCategory": [], "associationTypeId": "x"}]',
    '[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1.5}]',
    "[null]",
)


def test_no_hubspot_endpoint_answers_a_malformed_body_with_a_500(portal):
    deal = portal.add("deal", {"name": "Acme"})
    acme = portal.add("company", {"name": "Acme"})
    before = dict(deal.values)
    endpoints = [
        ("POST", "/crm/v3/objects/deals"),
        ("PATCH", f"/crm/v3/objects/deals/{deal.crm_id}"),
        ("POST", "/crm/v3/objects/deals/batch/read"),
        ("POST", "/crm/v3/objects/deals/batch/update"),
        ("POST", "/crm/v3/objects/deals/batch/create"),
        ("POST", "/crm/v3/objects/deals/search"),
        ("PUT", f"/crm/v4/objects/deals/{deal.crm_id}/associations/companies/{acme.crm_id}"),
        ("POST", "/crm/v4/associations/deals/companies/batch/read"),
    ]

    answers = {
        (method, path.replace(deal.crm_id, "{id}"), body): _raw(portal, method, path, body)
        for method, path in endpoints
        for body in _ODD_BODIES
    }

    crashed = {key: answer.status_code for key, answer in answers.items() if answer.ok is False}
    assert {key: status for key, status in crashed.items() if status >= 500} == {}
    assert all(_error(answers[key])["message"] for key in crashed)
    deal.refresh_from_db()
    assert deal.values == before


@pytest.mark.parametrize("after", ["²", "-1", "9" * 30])
def test_an_after_that_is_no_offset_is_a_validation_error(portal, after):
    deal = portal.add("deal", {"name": "Acme"})

    answers = [
        portal.get("/crm/v3/objects/deals", params={"after": after}),
        portal.get(f"/crm/v4/objects/deals/{deal.crm_id}/associations/companies?after={after}"),
        portal.get("/crm/v3/owners/", params={"after": after}),
        portal.post(
            "/crm/v4/associations/deals/companies/batch/read",
            {"inputs": [{"id": deal.crm_id, "after": after}]},
        ),
        portal.post("/crm/v3/objects/deals/search", {"after": after}),
    ]

    assert [answer.status_code for answer in answers] == [400] * 5
    assert {_error(answer)["category"] for answer in answers} == {"VALIDATION_ERROR"}


def test_a_nul_character_anywhere_is_an_answer_not_a_crash(portal):
    jane = portal.add("contact", {"email": "jane@acme.example"})

    written = _raw(
        portal,
        "PATCH",
        f"/crm/v3/objects/contacts/{jane.crm_id}",
        '{"properties": {"firstname": "Ja\\u0000ne"}}',
    )
    by_email = portal.get("/crm/v3/objects/contacts/jane%00@acme.example?idProperty=email")
    batch = _raw(
        portal,
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        '{"inputs": [{"id": "jane\\u0000@acme.example"}], "idProperty": "email"}',
    )
    searched = _raw(
        portal,
        "POST",
        "/crm/v3/objects/contacts/search",
        '{"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", '
        '"value": "jane\\u0000@acme.example"}]}]}',
    )
    path = portal.get("/crm/v3/objects/contacts/12%0034")

    assert written.status_code == 400
    assert written.json()["errors"][0]["code"] == "INVALID_PROPERTY_VALUE"
    assert by_email.status_code == 404
    assert (batch.status_code, batch.json()["results"]) == (207, [])
    assert (searched.status_code, searched.json()["total"]) == (200, 0)
    assert path.status_code == 404
    assert SandboxRequest.objects.filter(path="/crm/v3/objects/contacts/12%0034").exists()


def test_values_beyond_what_hubspot_can_hold_are_invalid_not_a_crash(portal):
    deal = portal.add("deal", {"name": "Acme"})

    response = portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        {"properties": {"amount": "1e999999999", "closedate": "9" * 25}},
    )

    assert response.status_code == 400
    codes = {
        error["context"]["propertyName"][0]: error["code"] for error in response.json()["errors"]
    }
    assert codes == {"amount": "INVALID_LONG", "closedate": "INVALID_DATE"}


# --- search --------------------------------------------------------------------------------


def test_search_filters_pages_and_totals(portal):
    for amount in (100, 200, 300):
        portal.add("deal", {"name": f"Deal {amount}", "amount": amount})

    first = portal.post(
        "/crm/v3/objects/deals/search",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "200"}]}
            ],
            "sorts": ["-amount"],
            "properties": ["amount"],
            "limit": 1,
        },
    ).json()
    last = portal.post(
        "/crm/v3/objects/deals/search",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "200"}]}
            ],
            "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}],
            "limit": 1,
            "after": first["paging"]["next"]["after"],
        },
    ).json()

    assert first["total"] == 2
    assert first["results"][0]["properties"]["amount"] == "300"
    assert first["paging"] == {"next": {"after": "1"}}
    assert set(first["results"][0]) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert last["results"][0]["properties"]["amount"] == "200"
    assert "paging" not in last


def test_search_refuses_pages_over_200_in_hubspots_body(portal):
    response = portal.post("/crm/v3/objects/deals/search", {"limit": 201})

    assert response.status_code == 400
    body = _error(response)
    assert body["category"] == "VALIDATION_ERROR"


def test_search_does_not_see_fresh_writes_until_the_lag_has_passed(portal):
    portal.limit(search_lag_seconds=30)
    fresh = portal.add("deal", {"name": "Fresh"})
    old = portal.add("deal", {"name": "Old"})
    SandboxRecord.objects.filter(pk=old.pk).update(updated_at=store.now() - timedelta(seconds=60))

    found = portal.post("/crm/v3/objects/deals/search", {}).json()

    assert [result["id"] for result in found["results"]] == [old.crm_id]
    assert portal.get(f"/crm/v3/objects/deals/{fresh.crm_id}").status_code == 200


# --- associations v4 -----------------------------------------------------------------------


def test_v4_association_list_pages(portal):
    acme = portal.add("company", {"name": "Acme"})
    people = [portal.add("contact", {}, associations=[acme]) for _ in range(3)]

    first = portal.get(
        f"/crm/v4/objects/companies/{acme.crm_id}/associations/contacts", params={"limit": 2}
    ).json()
    rest = portal.get(
        f"/crm/v4/objects/companies/{acme.crm_id}/associations/contacts",
        params={"limit": 2, "after": first["paging"]["next"]["after"]},
    ).json()

    assert first["results"][0] == {
        "toObjectId": int(people[0].crm_id),
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 280, "label": None}],
    }
    assert [r["toObjectId"] for r in first["results"] + rest["results"]] == [
        int(p.crm_id) for p in people
    ]
    assert "paging" not in rest


def test_v4_labelled_create_is_201_default_is_200_and_delete_is_204(portal):
    acme = portal.add("company", {"name": "Acme"})
    jane = portal.add("contact", {})
    pair = f"/crm/v4/objects/contacts/{jane.crm_id}/associations/companies/{acme.crm_id}"

    labelled = portal.call(
        "PUT", pair, json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]
    )
    links = portal.get(f"/crm/v4/objects/contacts/{jane.crm_id}/associations/companies").json()
    deleted = portal.call("DELETE", pair)
    default = portal.call(
        "PUT",
        f"/crm/v4/objects/contacts/{jane.crm_id}/associations/default/companies/{acme.crm_id}",
    )

    assert labelled.status_code == 201
    assert labelled.json() == {
        "fromObjectTypeId": "0-1",
        "fromObjectId": jane.crm_id,
        "toObjectTypeId": "0-2",
        "toObjectId": acme.crm_id,
        "labels": ["Primary"],
    }
    assert labelled.headers["Location"]
    types = links["results"][0]["associationTypes"]
    assert {(t["typeId"], t["label"]) for t in types} == {(1, "Primary"), (279, None)}
    assert deleted.status_code == 204
    assert default.status_code == 200
    assert default.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 279,
    }


def test_v4_batch_read_answers_200_when_every_record_has_associations(portal):
    acme = portal.add("company", {"name": "Acme"})
    first = portal.add("deal", {"name": "First"}, associations=[acme])
    second = portal.add("deal", {"name": "Second"}, associations=[acme])

    response = portal.post(
        "/crm/v4/associations/0-2/0-3/batch/read", {"inputs": [{"id": acme.crm_id}]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert "errors" not in body
    assert "numErrors" not in body
    assert body["results"] == [
        {
            "from": {"id": acme.crm_id},
            "to": [
                {
                    "toObjectId": int(deal.crm_id),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 342, "label": None}
                    ],
                }
                for deal in (first, second)
            ],
        }
    ]
    logged = SandboxRequest.objects.filter(account=portal.account).last()
    assert (logged.kind, logged.object_name, logged.record_ids) == (
        "read",
        "companies",
        [acme.crm_id],
    )


def test_v4_batch_read_reports_records_without_associations(portal):
    acme = portal.add("company", {"name": "Acme"})
    lonely = portal.add("company", {"name": "Lonely"})
    deal = portal.add("deal", {"name": "Acme deal"}, associations=[acme])

    response = portal.post(
        "/crm/v4/associations/companies/deals/batch/read",
        {"inputs": [{"id": acme.crm_id}, {"id": lonely.crm_id}]},
    )

    assert response.status_code == 207
    body = response.json()
    assert body["results"][0]["from"] == {"id": acme.crm_id}
    assert body["results"][0]["to"][0]["toObjectId"] == int(deal.crm_id)
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert (error["category"], error["subCategory"]) == (
        "OBJECT_NOT_FOUND",
        "crm.associations.NO_ASSOCIATIONS_FOUND",
    )
    assert error["context"] == {"fromObjectId": [lonely.crm_id]}


def test_v4_batch_read_refuses_more_than_1000_inputs(portal):
    inputs = [{"id": str(number)} for number in range(1, 1002)]

    response = portal.post("/crm/v4/associations/companies/deals/batch/read", {"inputs": inputs})

    assert response.status_code == 400
    body = _error(response)
    assert body["category"] == "VALIDATION_ERROR"
    assert "1000" in body["message"]


def test_v4_batch_read_pages_each_record_with_its_after(portal, monkeypatch):
    monkeypatch.setattr(associations, "PAGE_LIMIT", 2)
    acme = portal.add("company", {"name": "Acme"})
    deals = [portal.add("deal", {"name": f"Deal {n}"}, associations=[acme]) for n in range(3)]
    path = "/crm/v4/associations/companies/deals/batch/read"

    first = portal.post(path, {"inputs": [{"id": acme.crm_id}]}).json()["results"][0]
    after = first["paging"]["next"]["after"]
    rest = portal.post(path, {"inputs": [{"id": acme.crm_id, "after": after}]}).json()

    assert [item["toObjectId"] for item in first["to"]] == [int(d.crm_id) for d in deals[:2]]
    assert [item["toObjectId"] for item in rest["results"][0]["to"]] == [int(deals[2].crm_id)]
    assert "paging" not in rest["results"][0]


# --- properties, owners, pipelines ---------------------------------------------------------


def test_every_property_has_description_options_and_modification_metadata(portal):
    seed.add_custom_field(portal.account, "deal", "forecast", "enumeration", options=["commit"])

    results = portal.get("/crm/v3/properties/deals").json()["results"]

    by_name = {prop["name"]: prop for prop in results}
    for prop in results:
        assert isinstance(prop["description"], str)
        assert isinstance(prop["options"], list)
        assert {"archivable", "readOnlyDefinition", "readOnlyValue"} <= set(
            prop["modificationMetadata"]
        )
    assert by_name["hs_lastmodifieddate"]["modificationMetadata"]["readOnlyValue"] is True
    assert by_name["amount"]["modificationMetadata"]["readOnlyValue"] is False
    owner = by_name["hubspot_owner_id"]
    assert (owner["referencedObjectType"], owner["externalOptions"]) == ("OWNER", True)
    assert by_name["forecast"]["options"][0]["value"] == "commit"
    assert "hubspotDefined" not in by_name["forecast"]
    stage = portal.get("/crm/v3/properties/deals/dealstage").json()
    assert "closedwon" in [option["value"] for option in stage["options"]]
    assert portal.get("/crm/v3/properties/deals/nope").status_code == 404


def test_owners_list_with_and_without_the_trailing_slash_and_by_email(portal):
    seed.add_user(portal.account, "riley@seller.example", first_name="Riley")

    with_slash = portal.get("/crm/v3/owners/").json()
    without = portal.get("/crm/v3/owners", params={"email": "Riley@seller.example"}).json()
    paged = portal.get("/crm/v3/owners/", params={"limit": 1}).json()

    assert [owner["email"] for owner in with_slash["results"]] == [
        "ops@seller.example",
        "riley@seller.example",
    ]
    assert [owner["email"] for owner in without["results"]] == ["riley@seller.example"]
    assert paged["paging"]["next"]["after"] == "1"
    owner = with_slash["results"][0]
    assert owner["id"] == portal.user.owner_id
    assert owner["userId"] == int(portal.user.crm_user_id)
    assert owner["type"] == "PERSON"
    assert owner["teams"] == [{"id": owner["teams"][0]["id"], "name": "West", "primary": True}]


def test_an_owner_is_found_by_id_or_by_user_id(portal):
    by_id = portal.get(f"/crm/v3/owners/{portal.user.owner_id}")
    by_user = portal.get(f"/crm/v3/owners/{portal.user.crm_user_id}?idProperty=userId")

    assert by_id.json()["email"] == by_user.json()["email"] == "ops@seller.example"
    assert portal.get("/crm/v3/owners/1").status_code == 404


def test_pipelines_carry_stage_metadata(portal):
    pipelines = portal.get("/crm/v3/pipelines/deals").json()["results"]
    stages = portal.get("/crm/v3/pipelines/deals/default/stages").json()["results"]

    assert [pipeline["id"] for pipeline in pipelines] == ["default"]
    by_id = {stage["id"]: stage for stage in stages}
    assert list(by_id) == [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ]
    assert by_id["closedwon"]["metadata"] == {"isClosed": "true", "probability": "1.0"}
    assert by_id["closedlost"]["metadata"] == {"isClosed": "true", "probability": "0.0"}
    assert by_id["qualifiedtobuy"]["metadata"]["isClosed"] == "false"
    assert portal.get("/crm/v3/pipelines/deals/nope/stages").status_code == 404


# --- OAuth ---------------------------------------------------------------------------------


def test_a_refresh_token_gets_a_new_access_token_and_the_old_one_lives_on(portal):
    pair = seed.issue_token(portal.user, expires_in=timedelta(minutes=5), refresh=True)

    response = requests.post(
        portal.url + "/oauth/v1/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": pair.refresh_token,
            "client_id": "app",
            "client_secret": "secret",
        },
        timeout=5,
    )

    assert response.status_code == 200
    body = response.json()
    # The SDK's required four, plus the ids and scopes HubSpot's newer token schema lists.
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "hub_id",
        "user_id",
        "scopes",
    }
    assert (body["expires_in"], body["token_type"]) == (1800, "bearer")
    assert (body["hub_id"], body["user_id"]) == (62515, int(portal.user.crm_user_id))
    assert body["refresh_token"] == pair.refresh_token
    assert portal.get("/crm/v3/objects/deals", token=body["access_token"]).status_code == 200
    assert portal.get("/crm/v3/objects/deals", token=pair.access_token).status_code == 200
    info = requests.get(
        portal.url + f"/oauth/v1/access-tokens/{body['access_token']}", timeout=5
    ).json()
    assert (info["hub_id"], info["user"], info["token_type"]) == (
        62515,
        "ops@seller.example",
        "access",
    )
    assert 1790 <= info["expires_in"] <= 1800


def test_bad_grants_get_hubspots_token_errors(portal):
    revoked = seed.issue_token(portal.user, expires_in=timedelta(minutes=5), refresh=True)
    SandboxToken.objects.filter(pk=revoked.pk).update(revoked=True)

    def token(**data: str) -> requests.Response:
        return requests.post(portal.url + "/oauth/v1/token", data=data, timeout=5)

    unknown = token(grant_type="refresh_token", refresh_token="nope")
    revoked_answer = token(grant_type="refresh_token", refresh_token=revoked.refresh_token)
    code = token(grant_type="authorization_code", code="abc", redirect_uri="http://x")
    grant = token(grant_type="password")

    for answer in (unknown, revoked_answer):
        assert answer.status_code == 400
        assert answer.json()["status"] == "BAD_REFRESH_TOKEN"
        assert answer.json()["message"] == "missing or unknown refresh token"
    assert (code.status_code, code.json()["status"]) == (400, "BAD_AUTH_CODE")
    assert (grant.status_code, grant.json()["status"]) == (400, "BAD_GRANT_TYPE")


def test_a_token_request_that_is_no_readable_form_is_a_bad_grant(portal):
    response = requests.post(
        portal.url + "/oauth/v1/token",
        data=b"grant_type=refresh_token",
        headers={"Content-Type": "multipart/form-data"},  # no boundary
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["status"] == "BAD_GRANT_TYPE"
    assert response.json()["message"] == "missing or unknown grant type"
    assert response.json()["correlationId"] == response.headers["X-HubSpot-Correlation-Id"]


# --- rate limits ---------------------------------------------------------------------------


def test_the_burst_limit_answers_429_ten_secondly_rolling(portal):
    portal.limit(burst_limit=2)

    answers = [portal.get("/crm/v3/objects/deals") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    body = answers[2].json()
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"] == answers[2].headers["X-HubSpot-Correlation-Id"]
    assert answers[1].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answers[2].headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_the_search_limit_answers_429_secondly_without_headers(portal):
    portal.limit(search_per_second=1)

    first = portal.post("/crm/v3/objects/deals/search", {})
    second = portal.post("/crm/v3/objects/deals/search", {})

    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["policyName"] == "SECONDLY"
    assert not [name for name in second.headers if name.startswith("X-HubSpot-RateLimit")]


def test_the_daily_limit_answers_429_daily(portal):
    portal.limit(daily_limit=1)

    portal.get("/crm/v3/objects/deals")
    refused = portal.get("/crm/v3/objects/deals")

    assert refused.status_code == 429
    assert refused.json()["policyName"] == "DAILY"
    assert refused.json()["message"] == "You have reached your daily limit."
    assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


# --- faults --------------------------------------------------------------------------------


def test_an_injected_error_is_a_5xx_in_hubspots_shape(portal):
    portal.limit(error_rate=1.0)

    response = portal.get("/crm/v3/objects/deals")

    assert response.status_code >= 500
    assert _error(response)["category"]


def test_a_dropped_connection_breaks_the_response(portal):
    portal.limit(drop_rate=1.0)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="Connection broken"):
        portal.get("/crm/v3/objects/deals")

    assert time.monotonic() - started < 2  # cut off, not left waiting for the rest


def test_a_timeout_leaves_the_client_waiting(portal):
    portal.limit(timeout_rate=1.0, timeout_seconds=0.6)

    with pytest.raises(requests.exceptions.Timeout):
        portal.get("/crm/v3/objects/deals", timeout=0.2)

    _wait_for_log(portal.account, status=504)


def _wait_for_log(account: SandboxAccount, *, status: int) -> None:
    """Let the sleeping server thread finish (and log) before the test database goes away."""
    deadline = time.monotonic() + 5
    while not SandboxRequest.objects.filter(account=account, status=status).exists():
        assert time.monotonic() < deadline, "the sandbox never logged the request"
        time.sleep(0.05)


# --- request log ---------------------------------------------------------------------------


def test_the_request_log_shows_what_was_read_and_written(portal):
    deal = portal.add("deal", {"name": "Acme", "amount": 100})

    portal.get(f"/crm/v3/objects/deals/{deal.crm_id}")
    portal.patch(
        f"/crm/v3/objects/deals/{deal.crm_id}",
        {"properties": {"amount": "250.00", "hs_next_step": ""}},
    )
    portal.patch(f"/crm/v3/objects/deals/{deal.crm_id}", {"properties": {"nope": "1"}})

    read, write, refused = SandboxRequest.objects.filter(account=portal.account)
    assert (read.method, read.kind, read.status) == ("GET", "read", 200)
    assert read.record_ids == [deal.crm_id]
    assert (write.method, write.path, write.kind) == (
        "PATCH",
        f"/crm/v3/objects/deals/{deal.crm_id}",
        "write",
    )
    assert write.object_name == "deals"
    assert write.written == {deal.crm_id: {"amount": "250", "hs_next_step": None}}
    assert write.user == portal.user
    assert (refused.status, refused.error_code, refused.written) == (400, "VALIDATION_ERROR", {})
