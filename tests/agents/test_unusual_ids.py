"""Calls whose external id is not ASCII go through the whole pipeline on both CRMs.

The id names the call's scripted model answers (``<external id>/<workflow>``), which travel
in a request header; a header carries ASCII only, so the product encodes the key and the
sandbox's model decodes it.
"""

import json

import pytest

from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, RunStatus
from crm_agents.services import do_submit_call
from governance.review_models import ChangeProposal
from integrations.sandbox import seed
from integrations.sandbox.models import ModelMode, SandboxModelScript
from tests.agents.conftest import pricing_call

ODD_IDS = ["appel-café-1", "call 🎧 42", "Zoom/会議/7 50% off\ttoday"]


def _process(world, external_id: str) -> AgentRun:
    call, _ = do_submit_call(
        world.workspace, CallIn.model_validate(pricing_call(external_id=external_id))
    )
    tasks.process_call.delay(call.pk)
    return AgentRun.objects.get(call=call, workflow=world.workflow)


@pytest.mark.parametrize("external_id", ODD_IDS[:2])
def test_it_processes_a_call_whose_id_is_not_ascii(world, external_id):
    run = _process(world, external_id)

    assert run.status == RunStatus.APPLIED, run.status_reason
    assert run.call.external_id == external_id
    assert float(world.deal_value("amount")) == 84000


@pytest.mark.parametrize("external_id", ODD_IDS)
def test_it_finds_the_scripted_answers_of_a_call_whose_id_is_not_ascii(world, external_id):
    world.model_account.model_mode = ModelMode.SCRIPTED
    world.model_account.save(update_fields=["model_mode"])
    answer = {
        "updates": [
            {
                "field": "amount",
                "value": "$91,000",
                "evidence": "the number we can work with is $84,000 a year",
                "confidence": 0.9,
            },
            {"field": "close_date", "value": None, "evidence": "", "confidence": 0},
            {"field": "next_step", "value": None, "evidence": "", "confidence": 0},
        ]
    }
    key = f"{external_id}/{world.workflow.key}"
    seed.script_answer(world.model_account, key, "extract", {"content": json.dumps(answer)})

    run = _process(world, external_id)

    assert run.status == RunStatus.APPLIED, run.status_reason
    assert float(world.deal_value("amount")) == 91000
    assert ChangeProposal.objects.get(change_set__run=run, field="amount").proposed_value == "91000"
    assert SandboxModelScript.objects.get(key=key).consumed_at is not None
