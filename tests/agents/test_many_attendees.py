"""A call with as many attendees as the API accepts is matched on both CRMs, in a few
requests: the contact search by email is split only as far as each CRM's limits need."""

import json
import math
from urllib.parse import parse_qs

from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, RunStatus
from crm_agents.services import do_submit_call
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call

HUBSPOT_BODY_MAX = 3000  # characters (reference A2; the sandbox refuses longer)
SALESFORCE_URI_MAX = 16_384  # bytes of URI and headers together


def _attendees() -> list[dict]:
    """Riley (internal), Jane (the deal's contact), 150 other contacts, 348 strangers."""
    people = [{"name": "Riley Rep", "email": "riley@seller.example", "internal": True}]
    people.append({"name": "Jane Doe", "email": "jane@acme.example"})
    people += [
        {"name": f"Guest {n}", "email": f"guest{n:03d}@partners.example"} for n in range(150)
    ]
    people += [
        {"name": f"Viewer {n}", "email": f"viewer{n:03d}@webinar.example"} for n in range(348)
    ]
    return people


def _contact_searches(world) -> list[SandboxRequest]:
    requests = SandboxRequest.objects.filter(account=world.account)
    if world.provider == "hubspot":
        return list(requests.filter(path__endswith="/objects/contacts/search"))
    queries = requests.filter(path__contains="/query")
    return [r for r in queries if "FROM Contact WHERE" in "".join(parse_qs(r.query).get("q", []))]


def test_it_matches_a_call_with_500_attendees_in_a_few_searches(world):
    for n in range(150):
        seed.add_record(
            world.account,
            "contact",
            {"first_name": "Guest", "last_name": str(n), "email": f"guest{n:03d}@partners.example"},
        )
    attendees = _attendees()
    assert len(attendees) == 500
    call, _ = do_submit_call(
        world.workspace, CallIn.model_validate(pricing_call(attendees=attendees))
    )

    tasks.process_call.delay(call.pk)

    run = AgentRun.objects.get(call=call, workflow=world.workflow)
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert run.record_id == world.deal.crm_id
    searches = _contact_searches(world)
    assert {search.status for search in searches} == {200}
    external = [a["email"] for a in attendees if not a.get("internal")]
    if world.provider == "hubspot":
        # Each request carries at most 3,000 characters, the emails alone ~14,000: the
        # fewest requests that can hold them, or one more for each request's own fields.
        listed = sum(len(json.dumps(email)) + 2 for email in external)
        fewest = math.ceil(listed / HUBSPOT_BODY_MAX)
        assert fewest <= len(searches) <= fewest + 1, len(searches)
    else:
        # Salesforce takes all 499 emails in 2 queries, each URI well within its limit.
        assert len(searches) == 2
        for search in searches:
            assert len(f"{search.path}?{search.query}") < SALESFORCE_URI_MAX
