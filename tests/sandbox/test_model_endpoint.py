"""The sandbox model answers the real openai client deterministically, over HTTP."""

import json

import openai
import pytest
import requests

from integrations.sandbox import seed
from integrations.sandbox.extractor import (
    FieldRequest,
    FieldType,
    Turn,
    build_response_format,
    render_transcript,
)
from integrations.sandbox.models import ModelMode, SandboxRequest

FIELDS = [
    FieldRequest("amount", FieldType.NUMBER, "Deal size the buyer stated"),
    FieldRequest("next_step", FieldType.STRING, "The next step both sides agreed on"),
]
TURNS = [
    Turn("Riley Rep", 10.0, "Thanks for joining, Jane.", external=False),
    Turn("Jane Doe", 65.0, "We can commit to $75,000 for the first year.", external=True),
    Turn("Riley Rep", 90.0, "Next step: I will send the MSA by Friday.", external=False),
]


def _client(server, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/sandbox/openai/v1", api_key=api_key, max_retries=0, timeout=10
    )


def _extraction_request(client: openai.OpenAI, **extra):
    from datetime import date

    return client.chat.completions.create(
        model="sandbox-rules-1",
        temperature=0,
        messages=[
            {"role": "system", "content": "Extract CRM field values from the call."},
            {"role": "user", "content": render_transcript(TURNS, date(2026, 11, 21))},
        ],
        response_format=build_response_format(FIELDS),
        **extra,
    )


def test_rules_mode_fills_the_schema_with_verbatim_evidence(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.RULES)

    completion = _extraction_request(_client(sandbox_server, api_key))

    answer = json.loads(completion.choices[0].message.content)
    by_field = {update["field"]: update for update in answer["updates"]}
    assert by_field["amount"]["value"] == 75000
    assert by_field["amount"]["evidence"] == "We can commit to $75,000 for the first year."
    assert by_field["next_step"]["value"].lower().startswith("send the msa")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_rules_mode_is_deterministic(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.RULES)
    client = _client(sandbox_server, api_key)

    first = _extraction_request(client)
    second = _extraction_request(client)

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id == second.id


def test_scripted_mode_returns_answers_in_order_then_repeats_the_last(sandbox_server):
    account, api_key = seed.create_model_account(ModelMode.SCRIPTED)
    seed.script_answer(account, "c1/hygiene", "extract", {"content": {"updates": []}}, position=0)
    hostile = {"updates": [{"field": "discount", "value": 99, "evidence": "x", "confidence": 1}]}
    seed.script_answer(account, "c1/hygiene", "extract", {"content": hostile}, position=1)
    client = _client(sandbox_server, api_key)
    headers = {"X-Sandbox-Script-Key": "c1/hygiene"}

    answers = [
        json.loads(_extraction_request(client, extra_headers=headers).choices[0].message.content)
        for _ in range(3)
    ]

    assert answers == [{"updates": []}, hostile, hostile]


def test_scripted_tool_calls_come_back_as_tool_calls(sandbox_server):
    account, api_key = seed.create_model_account(ModelMode.SCRIPTED)
    seed.script_answer(
        account,
        "chat-1",
        "chat",
        {"tool_calls": [{"name": "find_records", "arguments": {"query": "Acme"}}]},
    )

    completion = _client(sandbox_server, api_key).chat.completions.create(
        model="sandbox-rules-1",
        messages=[{"role": "user", "content": "find the Acme deal"}],
        tools=[{"type": "function", "function": {"name": "find_records", "parameters": {}}}],
        extra_headers={"X-Sandbox-Script-Key": "chat-1"},
    )

    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "find_records",
        {"query": "Acme"},
    )


def test_a_missing_script_is_a_clear_400(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.SCRIPTED)

    with pytest.raises(openai.BadRequestError) as caught:
        _extraction_request(_client(sandbox_server, api_key))

    assert "No scripted answer for key '' and step 'extract'" in str(caught.value)


def test_a_wrong_api_key_is_refused_like_openai(sandbox_server):
    seed.create_model_account(ModelMode.RULES)

    with pytest.raises(openai.AuthenticationError) as caught:
        _extraction_request(_client(sandbox_server, "sk-wrong"))

    assert caught.value.body["code"] == "invalid_api_key"


def test_rules_mode_refuses_what_it_cannot_answer(sandbox_server):
    _, api_key = seed.create_model_account(ModelMode.RULES)
    client = _client(sandbox_server, api_key)

    with pytest.raises(openai.BadRequestError, match="and chat requests \\(with 'tools'\\) only"):
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hello"}])
    with pytest.raises(openai.BadRequestError, match="Not an extraction request"):
        client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": "no transcript here"}],
            response_format=build_response_format(FIELDS),
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Invalid input JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"messages": []}', "'messages' must be a non-empty array"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": true}', "does not stream"),
    ],
)
def test_malformed_requests_get_specific_errors(sandbox_server, body, message):
    _, api_key = seed.create_model_account(ModelMode.RULES)

    response = requests.post(
        f"{sandbox_server.url}/sandbox/openai/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_every_model_call_is_logged(sandbox_server):
    account, api_key = seed.create_model_account(ModelMode.RULES)

    _extraction_request(_client(sandbox_server, api_key))
    _client(sandbox_server, api_key).models.list()

    logged = list(SandboxRequest.objects.filter(account=account).values_list("path", "status"))
    assert logged == [
        ("/sandbox/openai/v1/chat/completions", 200),
        ("/sandbox/openai/v1/models", 200),
    ]
