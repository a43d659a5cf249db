"""An extraction whose fields do not fit one structured-output schema takes several model
calls, each one the sandbox accepts, and proposes every field as one call would.

The model is the sandbox's, over HTTP through the real openai client; the sandbox refuses
any schema OpenAI would (tests/sandbox/test_model_schema_limits.py), so a 200 for every call
is the proof that each fits.
"""

from datetime import UTC, datetime

import pytest

from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.coerce import CoercionError, coerce_value
from crm_agents.extraction import ModelRejected, complete, extract, model_client, plan_decision
from crm_agents.models import AgentRun, FieldRule
from crm_agents.prompts import extraction_messages, field_request
from crm_agents.services import do_submit_call
from crm_agents.types import (
    Attendee,
    CallView,
    CurrentValue,
    ExtractionInput,
    FieldAsk,
    TranscriptTurn,
)
from governance.models import CrmProperty
from governance.review_models import ChangeProposal
from governance.services import do_refresh_properties
from integrations.crm.types import PropertyOption, PropertySpec, PropertyType
from integrations.sandbox import seed
from integrations.sandbox.extractor_contract import build_response_format
from integrations.sandbox.models import ModelMode, SandboxRequest
from tests.agents.conftest import pricing_call

CALL = CallView(
    external_id="mtg-split-001",
    title="Acme Logistics x Seller - rollout",
    started_at=datetime(2026, 11, 21, 15, 0, tzinfo=UTC),
    duration_s=1200,
    owner_email="riley@seller.example",
    attendees=(
        Attendee("Riley Rep", "riley@seller.example", internal=True),
        Attendee("Jane Doe", "jane@acme.example", internal=False),
    ),
    transcript=(
        TranscriptTurn(
            "Jane Doe", 5.0, "The number we can work with is $84,000 a year for the rollout."
        ),
        TranscriptTurn("Jane Doe", 20.0, "We chose the Fleet Platform product line."),
        TranscriptTurn("Jane Doe", 35.0, "The first depot city is Lyon, then the others."),
        TranscriptTurn("Jane Doe", 50.0, "Every driver will get the Cargo Hauler vehicle model."),
        TranscriptTurn(
            "Riley Rep", 65.0, "Next step then: I will send the MSA and order form by Friday."
        ),
    ),
)


def ask(name: str, type: PropertyType, instruction: str, options=()) -> FieldAsk:
    spec = PropertySpec(name, name.replace("_", " ").capitalize(), type, options)
    return FieldAsk(name, name, spec, instruction, "overwrite", CurrentValue(None, None))


def options(chosen: str, count: int, filler: str) -> tuple[PropertyOption, ...]:
    others = (PropertyOption(f"{filler}_{i:04d}", f"{filler} {i:04d}") for i in range(count - 1))
    return (PropertyOption(chosen.lower().replace(" ", "_"), chosen), *others)


# Two picklists of 600 options cannot share a schema (1,000 enum values at most); a picklist
# of 2,000 fits none, so it is asked with its options listed and checked in code.
PRODUCT_LINE = ask(
    "product_line",
    PropertyType.ENUMERATION,
    "The product line the buyer chose",
    options("Fleet Platform", 600, "Line"),
)
DEPOT_CITY = ask(
    "depot_city",
    PropertyType.ENUMERATION,
    "The first depot city of the rollout",
    options("Lyon", 600, "Town"),
)
VEHICLE_MODEL = ask(
    "vehicle_model",
    PropertyType.ENUMERATION,
    "The vehicle model the drivers will get",
    options("Cargo Hauler", 2000, "Model"),
)
INPUT = ExtractionInput(
    call=CALL,
    object_type="deal",
    record_name="Acme Logistics - Fleet platform",
    fields=(
        ask("amount", PropertyType.NUMBER, "The annual contract value the buyer agreed to"),
        PRODUCT_LINE,
        DEPOT_CITY,
        VEHICLE_MODEL,
        ask("next_step", PropertyType.STRING, "The concrete next step both sides agreed on"),
    ),
)


@pytest.fixture
def model(sandbox_server, settings):
    def _model(mode: str = ModelMode.RULES):
        account, api_key = seed.create_model_account(mode)
        settings.MODEL_BASE_URL = f"{sandbox_server.url}/sandbox/openai/v1"
        settings.MODEL_API_KEY = api_key
        return account

    return _model


def model_calls(account) -> list[int]:
    return list(
        SandboxRequest.objects.filter(
            account=account, path__endswith="/chat/completions"
        ).values_list("status", flat=True)
    )


def test_it_asks_in_as_few_calls_as_fit_and_proposes_every_field(model, workspace):
    account = model()

    result = extract(workspace, INPUT)

    assert model_calls(account) == [200, 200]
    assert [[f.name for f in call] for call in result.plan.calls] == [
        ["amount", "product_line", "vehicle_model", "next_step"],
        ["depot_city"],
    ]
    by_field = {value.field: value for value in result.values}
    assert sorted(by_field) == [
        "amount",
        "depot_city",
        "next_step",
        "product_line",
        "vehicle_model",
    ]
    assert by_field["amount"].raw_value == 84000
    assert by_field["product_line"].raw_value == "fleet_platform"
    assert by_field["depot_city"].raw_value == "lyon"
    assert by_field["vehicle_model"].raw_value == "cargo_hauler"
    assert by_field["depot_city"].evidence == "The first depot city is Lyon, then the others."
    assert by_field["depot_city"].evidence_start == 35.0
    assert result.dropped == ()


def test_the_sandbox_refuses_the_fields_asked_as_one_schema_as_openai_would(model):
    model()
    one_schema = build_response_format([field_request(field) for field in INPUT.fields])

    with pytest.raises(ModelRejected) as caught:
        complete(model_client(), "gpt-4o", extraction_messages(INPUT), response_format=one_schema)

    assert caught.value.status_code == 400
    assert "'extraction': 3200 enum values exceeds limit of 1000." in str(caught.value)


def test_the_run_records_every_call_and_why_they_are_several(model, workspace):
    model()

    result = extract(workspace, INPUT)

    first, second = result.calls
    assert result.exchange.prompt.startswith(
        "[model call 1 of 2: amount, product_line, vehicle_model, next_step]\n[system]"
    )
    assert "\n\n[model call 2 of 2: depot_city]\n[system]" in result.exchange.prompt
    assert "[model call 2 of 2: depot_city]\n{" in result.exchange.raw_answer
    assert result.exchange.prompt_tokens == first.prompt_tokens + second.prompt_tokens > 0
    assert len(result.exchange.prompt_hash) == 64
    assert result.exchange.prompt_hash not in (first.prompt_hash, second.prompt_hash)
    decision = plan_decision(result)
    assert decision["step"] == "extract"
    assert decision["model_calls"] == 2
    assert decision["reason"] == (
        "the fields do not fit one structured-output schema: "
        "1200 enum values exceeds limit of 1000."
    )
    assert [call["fields"] for call in decision["calls"]] == [
        ["amount", "product_line", "vehicle_model", "next_step"],
        ["depot_city"],
    ]
    assert [call["prompt_hash"] for call in decision["calls"]] == [
        first.prompt_hash,
        second.prompt_hash,
    ]
    assert decision["unconstrained"] == [
        {
            "field": "vehicle_model",
            "reason": "options checked in code, not by the schema: "
            "2000 enum values exceeds limit of 1000.",
        }
    ]


def test_a_rerun_asks_nothing_and_proposes_the_same(model, workspace):
    account = model()

    first = extract(workspace, INPUT)
    second = extract(workspace, INPUT)

    assert len(model_calls(account)) == 2
    assert second.exchange.cached is True
    assert second.values == first.values
    assert second.exchange.prompt_hash == first.exchange.prompt_hash


def test_one_call_when_the_fields_fit_records_nothing_more(model, workspace):
    account = model()
    fits = ExtractionInput(
        call=CALL, object_type="deal", record_name="Acme", fields=(INPUT.fields[0], DEPOT_CITY)
    )

    result = extract(workspace, fits)

    assert model_calls(account) == [200]
    assert plan_decision(result) is None
    assert result.exchange == result.calls[0]
    assert not result.exchange.prompt.startswith("[model call")


def test_an_option_the_schema_could_not_hold_is_checked_in_code(model, workspace):
    account = model(ModelMode.SCRIPTED)
    answer = {
        "updates": [
            {
                "field": "vehicle_model",
                "value": "flying_carpet",
                "evidence": "Every driver will get the Cargo Hauler vehicle model.",
                "confidence": 0.9,
            }
        ]
    }
    seed.script_answer(account, "c1/fleet", "extract", {"content": answer})
    only_vehicle = ExtractionInput(
        call=CALL, object_type="deal", record_name="Acme", fields=(VEHICLE_MODEL,)
    )

    result = extract(workspace, only_vehicle, script_key="c1/fleet")

    assert model_calls(account) == [200]
    [value] = result.values
    with pytest.raises(CoercionError, match="is not an option"):
        coerce_value(value.raw_value, VEHICLE_MODEL.spec, call_date=CALL.call_date)
    assert coerce_value("cargo_hauler", VEHICLE_MODEL.spec, call_date=CALL.call_date) == (
        "cargo_hauler"
    )


def test_a_run_whose_fields_need_two_calls_records_both_and_proposes_every_field(world):
    for name, chosen, filler in (
        ("product_line", "Fleet Platform", "Line"),
        ("depot_city", "Lyon", "Town"),
    ):
        choices = [chosen, *(f"{filler} {i:04d}" for i in range(599))]
        seed.add_custom_field(world.account, "deal", name, "enumeration", options=choices)
        FieldRule.objects.create(
            workspace=world.workspace,
            workflow=world.workflow,
            field=name,
            instruction=f"The {name.replace('_', ' ')} the buyer chose",
            order=10,
        )
    do_refresh_properties(world.connection, acting_user=None)
    world.policy.write_properties.add(
        *CrmProperty.objects.filter(
            connection=world.connection,
            name__in=[world.native("product_line"), world.native("depot_city")],
        )
    )
    transcript = [
        *pricing_call()["transcript"],
        {"speaker": "Jane Doe", "start": 70.0, "text": "We chose the Fleet Platform product line."},
        {"speaker": "Jane Doe", "start": 80.0, "text": "The first depot city is Lyon."},
    ]

    call, _ = do_submit_call(
        world.workspace, CallIn.model_validate(pricing_call(transcript=transcript))
    )
    tasks.process_call.delay(call.pk)
    run = AgentRun.objects.get(call=call, workflow=world.workflow)

    assert model_calls(world.model_account) == [200, 200]
    [split] = [d for d in run.decisions if d.get("step") == "extract"]
    assert split["model_calls"] == 2
    assert split["reason"].endswith("1200 enum values exceeds limit of 1000.")
    assert {"extract_call_1", "extract_call_2"} <= set(run.timings)
    assert run.prompt.startswith("[model call 1 of 2: ")
    proposals = {
        p.field: p.proposed_value for p in ChangeProposal.objects.filter(change_set__run=run)
    }
    assert float(proposals["amount"]) == 84000
    assert proposals["close_date"] == "2027-01-15"
    assert "MSA" in proposals["next_step"]
    assert proposals["product_line"] == "Fleet Platform"
    assert proposals["depot_city"] == "Lyon"
