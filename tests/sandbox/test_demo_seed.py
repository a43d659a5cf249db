"""`manage.py sandbox_seed` builds the same realistic demo CRM on both CRMs."""

import io

import pytest
from django.core.management import call_command

from integrations.crm.base import by_domain, search_all
from integrations.crm.clients import build_client
from integrations.crm.types import ObjectType, SearchQuery
from integrations.sandbox.demo_data import COMPANIES, demo_token
from integrations.sandbox.models import SandboxAccount


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_the_demo_crm_is_reachable_through_the_adapter(provider, sandbox_server):
    out = io.StringIO()
    call_command("sandbox_seed", provider=provider, stdout=out)

    account = SandboxAccount.objects.get(provider=provider)
    client = build_client(
        provider,
        base_url=sandbox_server.url,
        access_token=demo_token(provider, "ops@seller.example"),
    )
    companies = search_all(client, SearchQuery(ObjectType.COMPANY))
    deals = search_all(client, SearchQuery(ObjectType.DEAL))
    assert len(companies) == len(COMPANIES)
    assert f"{len(deals)} deals" in out.getvalue()
    # Several product-line deals per company make record matching a real choice.
    acme = client.search(
        by_domain(
            ObjectType.COMPANY,
            client.profile.native_field(ObjectType.COMPANY, "domain"),
            "acme.example",
        )
    ).records[0]
    assert client.associated_ids(ObjectType.COMPANY, acme.id, ObjectType.DEAL)
    assert {owner.email for owner in client.owners()} >= {"riley@seller.example"}
    assert account.name.startswith("Demo")


def test_reseeding_replaces_the_demo_and_keep_keeps_it(sandbox_server):
    call_command("sandbox_seed", provider="hubspot", stdout=io.StringIO())
    first = SandboxAccount.objects.get(provider="hubspot")

    call_command("sandbox_seed", provider="hubspot", keep=True, stdout=io.StringIO())
    assert SandboxAccount.objects.get(provider="hubspot").pk == first.pk

    call_command("sandbox_seed", provider="hubspot", stdout=io.StringIO())
    assert SandboxAccount.objects.get(provider="hubspot").pk != first.pk


def test_a_rep_with_owned_access_sees_only_their_deals_on_salesforce(sandbox_server):
    call_command("sandbox_seed", provider="salesforce", stdout=io.StringIO())
    admin = build_client(
        "salesforce",
        base_url=sandbox_server.url,
        access_token=demo_token("salesforce", "ops@seller.example"),
    )
    rep = build_client(
        "salesforce",
        base_url=sandbox_server.url,
        access_token=demo_token("salesforce", "riley@seller.example"),
    )

    everything = search_all(admin, SearchQuery(ObjectType.DEAL))
    own = search_all(rep, SearchQuery(ObjectType.DEAL))

    assert 0 < len(own) < len(everything)
