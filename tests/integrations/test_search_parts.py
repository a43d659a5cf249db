"""A search too big for one request is split into as few as fit and paged through as one."""

from dataclasses import replace

import pytest

from integrations.crm import errors, search_parts
from integrations.crm.base import by_email, search_all
from integrations.crm.clients import build_client
from integrations.crm.types import ObjectType, Operator, Page, SearchFilter, SearchQuery
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRequest

EMAIL = {"hubspot": "email", "salesforce": "Email"}


def _emails(query: SearchQuery) -> tuple[str, ...]:
    return next(item.values for item in query.filter_groups[0] if item.operator is Operator.IN)


def _fits_in(characters: int):
    return lambda query: sum(len(value) + 1 for value in _emails(query)) <= characters


def test_it_packs_the_values_into_as_few_parts_as_fit():
    query = by_email(ObjectType.CONTACT, "email", [f"p{n:02d}@x.example" for n in range(40)])

    parts = search_parts.split(query, _fits_in(100))

    # 13 characters a value, 7 to a part: 40 values need 6 parts, in order, none lost.
    assert [len(_emails(part)) for part in parts] == [7, 7, 7, 7, 7, 5]
    assert [v for part in parts for v in _emails(part)] == list(_emails(query))


def test_it_sends_a_query_that_fits_as_it_is():
    query = by_email(ObjectType.CONTACT, "email", ["a@x.example"])

    assert search_parts.split(query, _fits_in(100)) == [query]


def test_it_sends_a_value_too_long_for_any_request_alone():
    long = "l" * 200 + "@x.example"
    query = by_email(ObjectType.CONTACT, "email", ["a@x.example", long, "b@x.example"])

    parts = search_parts.split(query, _fits_in(100))

    assert [_emails(part) for part in parts] == [("a@x.example", "b@x.example"), (long,)]


def test_it_leaves_a_query_of_several_groups_for_the_crm_to_judge():
    many = tuple(f"p{n:02d}@x.example" for n in range(40))
    query = SearchQuery(
        ObjectType.CONTACT,
        filter_groups=(
            (SearchFilter("email", Operator.IN, values=many),),
            (SearchFilter("firstname", Operator.EQ, "Jane"),),
        ),
    )

    assert search_parts.split(query, lambda q: False) == [query]


def test_it_refuses_a_cursor_that_is_not_of_the_split_search():
    query = by_email(ObjectType.CONTACT, "email", [f"p{n:02d}@x.example" for n in range(40)])
    parts = search_parts.split(query, _fits_in(100))

    def never(_query):
        raise AssertionError("no request for a foreign cursor")

    for cursor in ("100", "part:9:", "part:x:1"):
        with pytest.raises(errors.ValidationFailed):
            search_parts.search(parts, cursor, never)
    assert search_parts.search(parts[:1], None, lambda q: Page((), 0)) == Page((), 0)


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request, sandbox_server):
    provider = request.param
    account = seed.create_account(provider, f"search parts {provider}")
    # Paging in sevens makes many quick searches; HubSpot's 5 a second is not under test.
    account.search_per_second = 0
    account.save(update_fields=["search_per_second"])
    user = seed.add_user(account, "ops@seller.example", access="all")
    client = build_client(
        provider, base_url=sandbox_server.url, access_token=seed.issue_token(user).access_token
    )
    return provider, account, client


def test_it_pages_through_a_split_search_and_finds_every_match(crm):
    provider, account, client = crm
    known = [f"contact-{n:03d}-with-a-long-address@buyer-organisation.example" for n in range(60)]
    for n, email in enumerate(known):
        seed.add_record(account, "contact", {"last_name": f"C{n}", "email": email})
    strangers = [f"stranger-{n:03d}-not-in-the-crm@elsewhere.example" for n in range(400)]
    query = by_email(ObjectType.CONTACT, EMAIL[provider], strangers + known)

    found = search_all(client, replace(query, properties=(EMAIL[provider],), limit=7))

    assert sorted(record.properties[EMAIL[provider]] for record in found) == known
    requests = SandboxRequest.objects.filter(account=account)
    assert not requests.filter(status__gte=400).exists()
    # Salesforce refuses more than 16,384 bytes of URI and headers.
    assert max(len(f"{r.path}?{r.query}") for r in requests) < 16_384
