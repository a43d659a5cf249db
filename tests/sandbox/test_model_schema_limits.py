"""The sandbox model refuses, with OpenAI's 400, a strict schema that structured outputs
would refuse, and answers one at each limit: the real openai client, over HTTP."""

import openai
import pytest

from crm_agents.prompts.schema_limits import measure
from integrations.sandbox import seed
from integrations.sandbox.models import ModelMode, SandboxRequest

KEY = "limits/probe"


def strict_object(properties: dict) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def with_properties(count: int) -> dict:
    return strict_object({f"p{index:04d}": {"type": "string"} for index in range(count)})


def nested(levels: int) -> dict:
    """A root object whose innermost property sits ``levels`` levels deep."""
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = strict_object({"a": schema})
    return schema


def deep_any_of(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def with_name_chars(total: int) -> dict:
    """100 properties whose names add up to ``total`` characters."""
    size, extra = divmod(total, 100)
    names = [f"{i:03d}".ljust(size + (1 if i < extra else 0), "n") for i in range(100)]
    return strict_object({name: {"type": "string"} for name in names})


def with_enum(values: list[str]) -> dict:
    return strict_object({"v": {"type": "string", "enum": values}})


def enum_of_chars(count: int, total: int) -> list[str]:
    size, extra = divmod(total, count)
    return [f"{i:04d}".ljust(size + (1 if i < extra else 0), "e") for i in range(count)]


AT_THE_LIMIT = {
    "properties": with_properties(5000),
    "nesting": nested(10),
    "string_chars": with_name_chars(120_000),
    "enum_values": with_enum([f"v{i:03d}" for i in range(1000)]),
    "large_enum_chars": with_enum(enum_of_chars(251, 15_000)),
    "short_enum_of_long_values": with_enum(enum_of_chars(250, 20_000)),
}
OVER_THE_LIMIT = {
    "properties": (with_properties(5001), "5001 object properties exceeds limit of 5000."),
    "nesting": (nested(11), "11 levels of nesting exceeds limit of 10."),
    "string_chars": (
        with_name_chars(120_001),
        "120001 characters of property names, definition names, enum values and const values "
        "exceeds limit of 120000.",
    ),
    "enum_values": (
        with_enum([f"v{i:04d}" for i in range(1001)]),
        "1001 enum values exceeds limit of 1000.",
    ),
    "large_enum_chars": (
        with_enum(enum_of_chars(251, 15_001)),
        "In context=('properties', 'v'), 15001 characters of enum values exceeds limit of 15000 "
        "for an enum of more than 250 values (251).",
    ),
}
NOT_STRICT = {
    "root_not_an_object": (
        {"type": "array", "items": {"type": "string"}},
        "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'.",
    ),
    "no_additional_properties": (
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
        "In context=(), 'additionalProperties' is required to be supplied and to be false.",
    ),
    "optional_property": (
        strict_object({"a": {"type": "string"}, "b": {"type": "string"}}) | {"required": ["a"]},
        "In context=(), 'required' is required to be supplied and to be an array including "
        "every key in properties. Missing 'b'.",
    ),
    "loose_nested_object": (
        strict_object({"a": {"type": "object", "properties": {}, "required": []}}),
        "In context=('properties', 'a'), 'additionalProperties' is required to be supplied and "
        "to be false.",
    ),
    "all_of": (
        strict_object({"a": {"allOf": [{"type": "string"}]}}),
        "In context=('properties', 'a'), 'allOf' is not permitted.",
    ),
    "type_not_a_name": (
        strict_object({"a": {"type": [{"x": 1}]}}),
        "In context=('properties', 'a'), type {\"x\": 1} is not supported.",
    ),
    "any_of_nested_too_deep": (
        strict_object({"a": deep_any_of(300)}),
        "In context=('properties', 'a', 'anyOf', '0', 'anyOf', '0')..., more than 10 levels of "
        "nesting.",
    ),
    "array_without_items": (
        strict_object({"a": {"type": "array"}}),
        "In context=('properties', 'a'), array schema missing items.",
    ),
}


@pytest.fixture
def client(sandbox_server):
    account, api_key = seed.create_model_account(ModelMode.SCRIPTED)
    seed.script_answer(account, KEY, "probe", {"content": "{}"})
    return account, openai.OpenAI(
        base_url=f"{sandbox_server.url}/sandbox/openai/v1",
        api_key=api_key,
        max_retries=0,
        timeout=30,
    )


def ask(client: openai.OpenAI, schema: dict, *, strict: bool = True):
    return client.chat.completions.create(
        model="sandbox-rules-1",
        messages=[{"role": "user", "content": "probe"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "probe", "strict": strict, "schema": schema},
        },
        extra_headers={"X-Sandbox-Script-Key": KEY},
    )


def test_the_probes_sit_exactly_at_each_limit():
    assert measure(AT_THE_LIMIT["properties"])[0].properties == 5000
    assert measure(AT_THE_LIMIT["nesting"])[1] == 10
    assert measure(AT_THE_LIMIT["string_chars"])[0].string_chars == 120_000
    assert measure(AT_THE_LIMIT["enum_values"])[0].enum_values == 1000


@pytest.mark.parametrize("limit", sorted(AT_THE_LIMIT))
def test_it_answers_a_schema_at_the_limit(client, limit):
    _, openai_client = client

    completion = ask(openai_client, AT_THE_LIMIT[limit])

    assert completion.choices[0].message.content == "{}"


@pytest.mark.parametrize("limit", sorted(OVER_THE_LIMIT))
def test_it_refuses_a_schema_over_the_limit_as_openai_does(client, limit):
    account, openai_client = client
    schema, message = OVER_THE_LIMIT[limit]

    with pytest.raises(openai.BadRequestError) as caught:
        ask(openai_client, schema)

    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": f"Invalid schema for response_format 'probe': {message}",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "invalid_json_schema",
    }
    logged = SandboxRequest.objects.get(account=account)
    assert (logged.status, logged.error_code) == (400, "invalid_json_schema")


@pytest.mark.parametrize("rule", sorted(NOT_STRICT))
def test_it_refuses_a_schema_strict_mode_does_not_accept(client, rule):
    _, openai_client = client
    schema, message = NOT_STRICT[rule]

    with pytest.raises(openai.BadRequestError) as caught:
        ask(openai_client, schema)

    assert caught.value.body["message"] == f"Invalid schema for response_format 'probe': {message}"
    assert caught.value.body["code"] == "invalid_json_schema"


def test_it_holds_only_strict_schemas_to_strict_mode(client):
    _, openai_client = client

    completion = ask(openai_client, with_properties(5001), strict=False)

    assert completion.choices[0].message.content == "{}"


def test_a_json_schema_without_a_name_is_a_missing_parameter(client):
    _, openai_client = client

    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="sandbox-rules-1",
            messages=[{"role": "user", "content": "probe"}],
            response_format={"type": "json_schema", "json_schema": {"schema": nested(2)}},
            extra_headers={"X-Sandbox-Script-Key": KEY},
        )

    assert caught.value.body["code"] == "missing_required_parameter"
    assert caught.value.body["param"] == "response_format.json_schema.name"
