"""The rules-mode sandbox model answers chat with a small deterministic grammar."""

import json

import openai
import pytest
import requests

from integrations.sandbox import seed
from integrations.sandbox.chat_rules import HELP, ChatRequestError, answer_chat
from integrations.sandbox.models import ModelMode

ALL_TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {}}}
    for name in ("find_records", "read_record", "propose_update")
]


def _user(text: str) -> list[dict]:
    return [
        {"role": "system", "content": "You are the CRM agent."},
        {"role": "user", "content": text},
    ]


def _call(text: str, tools: list[dict] = ALL_TOOLS) -> tuple[str, dict]:
    answer = answer_chat(_user(text), tools)
    [call] = answer["tool_calls"]
    return call["name"], call["arguments"]


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("Find the Acme deal", {"query": "Acme", "object_type": "deal"}),
        ("find Jane Doe contact.", {"query": "Jane Doe", "object_type": "contact"}),
        ("find jane@acme.example", {"query": "jane@acme.example"}),
        ("FIND acme.example", {"query": "acme.example"}),
        ("find the Globex company?", {"query": "Globex", "object_type": "company"}),
    ],
)
def test_it_finds_records_by_name_email_and_domain(text, arguments):
    assert _call(text) == ("find_records", arguments)


@pytest.mark.parametrize("text", ["list my open deals", "My open deals", "show me my open deals."])
def test_it_lists_my_open_deals(text):
    assert _call(text) == ("find_records", {"mine": True, "open": True, "object_type": "deal"})


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("show the close date of the Acme deal", {"record": "Acme", "fields": ["close_date"]}),
        ("Show amount for Globex", {"record": "Globex", "fields": ["amount"]}),
        ("what is the next step of it?", {"record": "it", "fields": ["next_step"]}),
        ("What's the Deal Stage of that deal", {"record": "it", "fields": ["deal_stage"]}),
        ("show its close date", {"record": "it", "fields": ["close_date"]}),
    ],
)
def test_it_reads_a_field_of_a_named_record_or_it(text, arguments):
    assert _call(text) == ("read_record", arguments)


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        (
            "set the close date of the Acme deal to Friday",
            {"record": "Acme", "field": "close_date", "value": "Friday"},
        ),
        (
            "Set next step of it to send the MSA to legal.",
            {"record": "it", "field": "next_step", "value": "send the MSA to legal"},
        ),
        (
            "set its close date to Friday",
            {"record": "it", "field": "close_date", "value": "Friday"},
        ),
        ("change the amount to 75000", {"record": "it", "field": "amount", "value": "75000"}),
        (
            "Change amount for Globex to 12,500",
            {"record": "Globex", "field": "amount", "value": "12,500"},
        ),
    ],
)
def test_it_proposes_an_update(text, arguments):
    assert _call(text) == ("propose_update", arguments)


def test_it_reads_the_last_user_message_only():
    messages = [
        {"role": "user", "content": "find the Acme deal"},
        {"role": "assistant", "content": "Found it."},
        {"role": "user", "content": [{"type": "text", "text": "set its amount to 5"}]},
    ]

    [call] = answer_chat(messages, ALL_TOOLS)["tool_calls"]

    assert call["name"] == "propose_update"


def test_it_says_which_tool_is_missing_when_it_is_not_offered():
    answer = answer_chat(_user("set its amount to 5"), ALL_TOOLS[:2])

    assert answer == {
        "content": "I would need the 'propose_update' tool for that, but this request does not "
        "offer it (offered: find_records, read_record)."
    }


def test_it_answers_a_tool_result_with_content_never_another_call():
    messages = [
        *_user("find the Acme deal"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"summary": "Found Acme."})},
    ]
    assert answer_chat(messages, ALL_TOOLS) == {"content": "Found Acme."}

    messages[-1]["content"] = "not json"
    assert "tool_calls" not in answer_chat(messages, ALL_TOOLS)


@pytest.mark.parametrize("text", ["hello", "delete every deal", "find", ""])
def test_it_explains_what_it_can_do_for_anything_else(text):
    assert answer_chat(_user(text), ALL_TOOLS) == {"content": HELP}


def test_it_is_deterministic():
    messages = _user("set the close date of the Acme deal to Friday")

    assert answer_chat(messages, ALL_TOOLS) == answer_chat(messages, ALL_TOOLS)


@pytest.mark.parametrize(
    ("messages", "tools", "message"),
    [
        (_user("hi"), "find_records", "'tools' must be an array"),
        (_user("hi"), [{"name": "find_records"}], r"tools\[0\] must be"),
        ([{"content": "hi"}], ALL_TOOLS, "string 'role'"),
        ([{"role": "system", "content": "hi"}], ALL_TOOLS, "no user message"),
        ([{"role": "user", "content": 5}], ALL_TOOLS, "string or text parts"),
    ],
)
def test_it_refuses_malformed_requests(messages, tools, message):
    with pytest.raises(ChatRequestError, match=message):
        answer_chat(messages, tools)


def _client(server, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/sandbox/openai/v1", api_key=api_key, max_retries=0, timeout=10
    )


def test_it_answers_the_real_openai_client_with_tool_calls_then_content(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.RULES)
    client = _client(sandbox_server, api_key)
    messages = _user("set the close date of the Acme deal to Friday")

    first = client.chat.completions.create(
        model="sandbox-rules-1", messages=messages, tools=ALL_TOOLS
    )

    [call] = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "propose_update",
        {"record": "Acme", "field": "close_date", "value": "Friday"},
    )

    result = {"role": "tool", "tool_call_id": call.id, "content": '{"summary": "Proposed."}'}
    second = client.chat.completions.create(
        model="sandbox-rules-1",
        messages=[*messages, first.choices[0].message.model_dump(exclude_none=True), result],
        tools=ALL_TOOLS,
    )

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Proposed."
    assert second.choices[0].message.tool_calls is None


def test_it_refuses_malformed_tools_over_http_with_a_specific_400(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.RULES)
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}

    response = requests.post(
        f"{sandbox_server.url}/sandbox/openai/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert (
        "Not a chat request the rules model reads: tools[0] must be"
        in (response.json()["error"]["message"])
    )
