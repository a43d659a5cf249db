"""The extraction's fields split into as few structured-output schemas as fit OpenAI's limits."""

from datetime import date

import pytest

from crm_agents.prompts.schema_limits import (
    SchemaTooLarge,
    first_exceeded,
    measure,
    plan_requests,
    schema_problem,
)
from integrations.sandbox.extractor_contract import (
    OPTIONS_HINT,
    FieldOption,
    FieldRequest,
    FieldType,
    build_response_format,
    parse_request,
    render_transcript,
)


def text(name: str) -> FieldRequest:
    return FieldRequest(name, FieldType.STRING, "What the buyer said about it")


def yes_no(name: str) -> FieldRequest:
    return FieldRequest(name, FieldType.BOOL, "Whether the buyer said so")


def picklist(name: str, count: int, *, size: int = 8) -> FieldRequest:
    options = tuple(
        FieldOption(f"{name[:2]}{index:05d}".ljust(size, "o"), f"Option {index}")
        for index in range(count)
    )
    return FieldRequest(name, FieldType.ENUMERATION, "Which one the buyer chose", options)


def schema(fields) -> dict:
    return build_response_format(fields)["json_schema"]["schema"]


def names(plan) -> list[list[str]]:
    return [[field.name for field in call] for call in plan.calls]


def test_every_field_type_makes_a_strict_schema_four_levels_deep():
    fields = [
        text("next_step"),
        FieldRequest("amount", FieldType.NUMBER, "Deal size"),
        FieldRequest("close_date", FieldType.DATE, "Signing date"),
        FieldRequest("meeting_at", FieldType.DATETIME, "Next meeting"),
        yes_no("budget_approved"),
        picklist("stage", 3),
    ]

    assert schema_problem(schema(fields)) is None
    usage, nesting = measure(schema(fields))
    assert nesting == 4
    # "updates", then field, value, evidence and confidence in each branch.
    assert usage.properties == 1 + 4 * len(fields)
    # true, false and null of the yes/no, and the picklist's three options.
    assert usage.enum_values == 3 + 3


def test_fields_that_fit_one_schema_make_one_call_in_request_order():
    fields = [text("next_step"), yes_no("budget_approved"), picklist("stage", 5)]

    plan = plan_requests(fields)

    assert names(plan) == [["next_step", "budget_approved", "stage"]]
    assert (plan.split_because, plan.unconstrained) == ("", ())


@pytest.mark.parametrize(("count", "calls"), [(1249, 1), (1250, 2), (2498, 2), (2499, 3)])
def test_it_splits_at_exactly_5000_object_properties(count, calls):
    # 1 + 4 per field: 1,249 fields make 4,997 properties, 1,250 make 5,001.
    plan = plan_requests([text(f"f{index:04d}") for index in range(count)])

    assert len(plan.calls) == calls
    assert sum(len(call) for call in plan.calls) == count
    assert all(first_exceeded(schema(call)) is None for call in plan.calls)


def test_it_splits_at_exactly_1000_enum_values():
    # A yes/no is three enum values (null included), a one-option picklist one: 999 + 1.
    at_limit = [yes_no(f"b{index:03d}") for index in range(333)] + [picklist("one", 1)]

    assert measure(schema(at_limit))[0].enum_values == 1000
    assert len(plan_requests(at_limit).calls) == 1
    over = plan_requests([*at_limit, picklist("two", 1)])
    assert len(over.calls) == 2
    assert over.split_because == "1001 enum values exceeds limit of 1000."


def test_it_splits_at_exactly_120000_characters_of_names_and_values():
    # "updates" is 7 characters; each text field adds field, value, evidence and confidence
    # (28) and its name.
    fields = [text(f"{index:03d}".ljust(1172, "n")) for index in range(99)]
    last = 120_000 - 7 - 99 * 1200 - 28

    at_limit = [*fields, text("last".ljust(last, "n"))]
    over = [*fields, text("last".ljust(last + 1, "n"))]

    assert measure(schema(at_limit))[0].string_chars == 120_000
    assert len(plan_requests(at_limit).calls) == 1
    assert len(plan_requests(over).calls) == 2


def test_it_uses_as_few_calls_as_fit_not_the_request_order():
    # In request order 600 | 600 + 400 | 400 would take three calls; two fit.
    fields = [picklist("a", 600), picklist("b", 600), picklist("c", 400), picklist("d", 400)]

    plan = plan_requests(fields)

    assert names(plan) == [["a", "c"], ["b", "d"]]
    assert all(schema_problem(schema(call)) is None for call in plan.calls)


def test_a_picklist_at_the_limit_keeps_its_options_and_what_has_no_room_goes_on():
    fields = [text("next_step"), picklist("product", 1000), yes_no("budget_approved")]

    plan = plan_requests(fields)

    assert names(plan) == [["next_step", "product"], ["budget_approved"]]
    assert plan.unconstrained == ()


def test_a_huge_picklist_is_asked_with_its_options_listed_and_checked_in_code():
    fields = [text("next_step"), picklist("vehicle_model", 2000)]

    plan = plan_requests(fields)

    assert names(plan) == [["next_step", "vehicle_model"]]
    assert plan.unconstrained == (("vehicle_model", "2000 enum values exceeds limit of 1000."),)
    asked = plan.calls[0][1]
    assert asked.constrained is False
    assert asked.options == fields[1].options
    value = schema(plan.calls[0])["properties"]["updates"]["items"]["anyOf"][1]["properties"][
        "value"
    ]
    assert value["type"] == ["string", "null"]
    assert value["description"].startswith(OPTIONS_HINT)
    assert schema_problem(schema(plan.calls[0])) is None


def test_the_sandbox_reads_the_options_of_an_unconstrained_picklist_back():
    [[field]] = plan_requests([picklist("vehicle_model", 2000)]).calls
    transcript = render_transcript((), date(2026, 12, 7))

    request = parse_request(
        [{"role": "user", "content": transcript}], build_response_format([field])
    )

    assert request.fields == (field,)


@pytest.mark.parametrize(("total", "constrained"), [(15_000, True), (15_001, False)])
def test_a_picklist_of_more_than_250_options_may_total_15000_characters(total, constrained):
    size, extra = divmod(total, 251)
    options = tuple(
        FieldOption(
            f"{index:04d}".ljust(size + (1 if index < extra else 0), "o"), f"Option {index}"
        )
        for index in range(251)
    )
    field = FieldRequest("region", FieldType.ENUMERATION, "Where", options)

    [[asked]] = plan_requests([field]).calls

    assert asked.constrained is constrained


def test_250_long_options_are_no_large_enum():
    [[asked]] = plan_requests([picklist("region", 250, size=80)]).calls

    assert asked.constrained is True


def test_a_field_no_schema_can_hold_is_refused_by_name():
    with pytest.raises(SchemaTooLarge, match=r"field 'n+' cannot be asked for: 120035 characters"):
        plan_requests([text("n" * 120_000)])
