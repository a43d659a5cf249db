"""An OpenAI-compatible Chat Completions endpoint that answers deterministically.

``rules`` mode answers extraction requests (``response_format`` json_schema named
``extraction``) with the rule-based extractor and chat requests (the request offers
``tools``) with the small grammar of ``chat_rules``. ``scripted`` mode returns answers stored in
advance (SandboxModelScript), picked by the ``X-Sandbox-Script-Key`` header and the
request's step: ``extract`` or ``choose_record`` from the json_schema name, ``chat`` when
the request offers tools. The key is percent-encoded UTF-8 (a header value is ASCII, and a
key holds a call's external id, which may be any text). The real ``openai`` client works
against it unchanged.

In either mode, a ``json_schema`` response format with ``strict`` true is first held to what
OpenAI's structured outputs accept (crm_agents/prompts/schema_limits.py: strict mode's rules
of shape, then its size limits) and refused with OpenAI's 400 otherwise, so a test catches a
schema the real API would refuse.
"""

import hashlib
import json
import time
from urllib.parse import unquote

from django.db import transaction
from django.http import HttpRequest
from django.views.decorators.http import require_GET, require_POST

from crm_agents.prompts.schema_limits import schema_problem
from integrations.sandbox import store
from integrations.sandbox.chat_rules import ChatRequestError, answer_chat
from integrations.sandbox.extractor import ExtractionRequestError, answer_chat_request
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import ModelMode, Provider, RequestKind, SandboxModelScript

MODEL_NAME = "sandbox-rules-1"
STEP_BY_SCHEMA = {"extraction": "extract", "choose_record": "choose_record"}


@require_GET
@endpoint(Provider.OPENAI, RequestKind.MODEL)
def models(request: HttpRequest, call: Call) -> Reply:
    return Reply(
        {
            "object": "list",
            "data": [
                {
                    "id": MODEL_NAME,
                    "object": "model",
                    "created": 1_767_225_600,
                    "owned_by": "crm-steward",
                }
            ],
        }
    )


@require_POST
@endpoint(Provider.OPENAI, RequestKind.MODEL)
def chat_completions(request: HttpRequest, call: Call) -> Reply:
    body = call.json_body()
    if not isinstance(body, dict):
        raise SandboxError(400, "The request body must be a JSON object.", "invalid_body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SandboxError(
            400,
            "'messages' must be a non-empty array.",
            "invalid_value",
            extra={"param": "messages"},
        )
    if body.get("stream"):
        raise SandboxError(
            400,
            "The sandbox model does not stream; leave 'stream' unset.",
            "unsupported_value",
            extra={"param": "stream"},
        )
    _check_response_format(body.get("response_format"))
    step = _step_of(body)
    if call.account.model_mode == ModelMode.SCRIPTED:
        key = unquote(request.headers.get("X-Sandbox-Script-Key", ""))
        answer = _next_scripted_answer(call, key, step)
    else:
        answer = _rules_answer(body, step)
    call.object_name = step
    return Reply(_completion(body, messages, answer))


def _check_response_format(response_format: object) -> None:
    """Refuse, as OpenAI does, a strict json_schema that structured outputs would not take."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return
    wrapper = response_format.get("json_schema")
    if not isinstance(wrapper, dict):
        raise _missing("response_format.json_schema")
    name = wrapper.get("name")
    if not isinstance(name, str) or not name:
        raise _missing("response_format.json_schema.name")
    if wrapper.get("strict") is not True:
        return
    problem = schema_problem(wrapper.get("schema"))
    if problem:
        raise SandboxError(
            400,
            f"Invalid schema for response_format '{name}': {problem}",
            "invalid_json_schema",
            extra={"param": "response_format"},
        )


def _missing(param: str) -> SandboxError:
    return SandboxError(
        400,
        f"Missing required parameter: '{param}'.",
        "missing_required_parameter",
        extra={"param": param},
    )


def _step_of(body: dict) -> str:
    response_format = body.get("response_format") or {}
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        name = (response_format.get("json_schema") or {}).get("name", "")
        return STEP_BY_SCHEMA.get(name, name or "json")
    return "chat" if body.get("tools") else "text"


def _rules_answer(body: dict, step: str) -> dict:
    if step == "chat":
        try:
            return answer_chat(body["messages"], body["tools"])
        except ChatRequestError as exc:
            raise SandboxError(
                400, f"Not a chat request the rules model reads: {exc}", "invalid_request"
            ) from exc
    if step != "extract":
        raise SandboxError(
            400,
            f"The sandbox model in rules mode answers extraction requests (json_schema named "
            f"'extraction') and chat requests (with 'tools') only; this request is a {step!r} "
            f"request. Script it instead.",
            "unsupported_request",
        )
    try:
        answer = answer_chat_request(body["messages"], body.get("response_format"))
    except ExtractionRequestError as exc:
        raise SandboxError(
            400, f"Not an extraction request the rules model reads: {exc}", "invalid_request"
        ) from exc
    return {"content": answer.to_json()}


@transaction.atomic
def _next_scripted_answer(call: Call, key: str, step: str) -> dict:
    scripts = SandboxModelScript.objects.select_for_update().filter(
        account=call.account, key=key, step=step
    )
    script = scripts.filter(consumed_at__isnull=True).order_by("position", "pk").first()
    if script is None:
        script = scripts.order_by("-position", "-pk").first()
    if script is None:
        raise SandboxError(
            400,
            f"No scripted answer for key {key!r} and step {step!r}"
            " (send the key in the X-Sandbox-Script-Key header).",
            "no_scripted_answer",
        )
    if script.consumed_at is None:
        script.consumed_at = store.now()
        script.save(update_fields=["consumed_at"])
    return script.answer


def _completion(body: dict, messages: list, answer: dict) -> dict:
    message: dict = {"role": "assistant", "content": None, "refusal": None}
    finish_reason = "stop"
    if answer.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": f"call_{index}_{_digest(json.dumps(tool, sort_keys=True))[:12]}",
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "arguments": tool["arguments"]
                    if isinstance(tool["arguments"], str)
                    else json.dumps(tool["arguments"]),
                },
            }
            for index, tool in enumerate(answer["tool_calls"])
        ]
        finish_reason = "tool_calls"
    else:
        content = answer.get("content", "")
        message["content"] = content if isinstance(content, str) else json.dumps(content)
    prompt_text = json.dumps(messages)
    completion_text = json.dumps(message)
    prompt_tokens, completion_tokens = _tokens(prompt_text), _tokens(completion_text)
    return {
        "id": f"chatcmpl-{_digest(prompt_text + completion_text)[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_NAME,
        "system_fingerprint": "sandbox",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _tokens(text: str) -> int:
    # About four characters a token, as OpenAI's own rule of thumb; stable for a given text.
    return max(1, len(text) // 4)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
