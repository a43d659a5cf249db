"""Step 4 of the pipeline: ask the model, once per exact prompt, and hold it to the contract.

The model only proposes (DESIGN.md invariant 2): whatever its answer holds beyond the
extraction contract of shared/scenarios/README.md (fields it was not asked for, other
records, values of the wrong type, quotes that are not in the transcript) becomes a
``Dropped`` with a reason, never a value and never an exception that loses the run.
Answers are cached by prompt hash (invariant 5), so a re-run asks nothing and proposes the
same values.
"""

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import openai
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from crm_agents.models import ModelAnswer
from crm_agents.prompts import (
    CHOOSE_RECORD_PROMPT_VERSION,
    PROMPT_VERSION,
    choose_record_format,
    choose_record_messages,
    extraction_messages,
    field_request,
    ranked,
    transcript_turns,
)
from crm_agents.prompts.schema_limits import RequestPlan, SchemaTooLarge, plan_requests
from crm_agents.types import (
    CallView,
    Candidate,
    Dropped,
    Extraction,
    ExtractionInput,
    ModelExchange,
    ProposedValue,
    TieBreak,
)
from governance.models import Workspace
from integrations.sandbox.extractor_contract import build_response_format, one_line

SCRIPT_KEY_HEADER = "X-Sandbox-Script-Key"
UPDATE_KEYS = ("field", "value", "evidence", "confidence")
# Keys by which an answer points at a record other than the one code matched.
RECORD_KEYS = frozenset({"record", "record_id", "recordId", "id", "object", "object_type"})
NOT_A_QUOTE = "the evidence is not a quote from the transcript"
OTHER_RECORD = "the answer targets another record; only the matched record can be changed"
_JSON_TYPES = {bool: "boolean", list: "array", dict: "object", str: "string"}


class ModelError(Exception):
    """The model could not be asked, or refused to answer."""


class ModelNotConfigured(ModelError):
    def __init__(self) -> None:
        super().__init__(
            "No model is configured: set MODEL_API_KEY "
            "(and MODEL_BASE_URL for a non-OpenAI endpoint)."
        )


class ModelUnavailable(ModelError):
    """Timeouts, lost connections, rate limits and server errors: worth retrying later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelRejected(ModelError):
    """The endpoint refused the request itself (400, 401, 404...): retrying cannot help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def model_client() -> openai.OpenAI:
    if not settings.MODEL_API_KEY:
        raise ModelNotConfigured()
    # No client-side retries: Celery retries the task, honouring ModelUnavailable.retry_after.
    return openai.OpenAI(
        base_url=settings.MODEL_BASE_URL,
        api_key=settings.MODEL_API_KEY,
        timeout=settings.MODEL_TIMEOUT,
        max_retries=0,
    )


def extract(workspace: Workspace, inp: ExtractionInput, *, script_key: str = "") -> Extraction:
    """The values the model proposes for ``inp.fields``, each with verbatim evidence, and
    everything of its answers that was refused.

    One model call when the fields' schema fits OpenAI's structured-output limits, else as
    few as fit (crm_agents/prompts/schema_limits.py), each asking for its own fields about the
    same call, record and context; each answer is held to the contract for the fields its
    call asked for, and the values merged per field.
    """
    try:
        plan = plan_requests([field_request(ask) for ask in inp.fields])
    except SchemaTooLarge as exc:
        raise ModelRejected(f"The extraction cannot be asked for: {exc}") from exc
    asks = {ask.name: ask for ask in inp.fields}
    calls: list[ModelExchange] = []
    values: list[ProposedValue] = []
    dropped: list[Dropped] = []
    for requests in plan.calls:
        part = replace(inp, fields=tuple(asks[request.name] for request in requests))
        exchange = _ask(
            workspace,
            extraction_messages(part),
            build_response_format(requests),
            PROMPT_VERSION,
            script_key,
        )
        part_values, part_dropped = _check_extraction(exchange.raw_answer, part)
        calls.append(exchange)
        values += part_values
        dropped += part_dropped
    return Extraction(
        exchange=calls[0] if len(calls) == 1 else _combined(calls, plan),
        values=tuple(values),
        dropped=tuple(dropped),
        calls=tuple(calls),
        plan=plan,
    )


def plan_decision(extracted: Extraction) -> dict | None:
    """The run's record of how the fields were asked for, when not in one plain call."""
    plan = extracted.plan
    if plan is None or (len(plan.calls) == 1 and not plan.unconstrained):
        return None
    return {
        "step": "extract",
        "model_calls": len(plan.calls),
        "reason": f"the fields do not fit one structured-output schema: {plan.split_because}"
        if plan.split_because
        else "the fields fit one structured-output schema",
        "calls": [
            {
                "fields": [request.name for request in requests],
                "prompt_hash": exchange.prompt_hash,
                "cached": exchange.cached,
            }
            for requests, exchange in zip(plan.calls, extracted.calls, strict=True)
        ],
        "unconstrained": [
            {"field": name, "reason": f"options checked in code, not by the schema: {why}"}
            for name, why in plan.unconstrained
        ],
    }


def _combined(calls: list[ModelExchange], plan: RequestPlan) -> ModelExchange:
    """One record of several calls for the run: each prompt and answer under a heading
    naming its fields, the hash of their hashes, their tokens added up."""

    def heading(index: int) -> str:
        names = ", ".join(request.name for request in plan.calls[index])
        return f"[model call {index + 1} of {len(calls)}: {names}]"

    return ModelExchange(
        prompt="\n\n".join(f"{heading(i)}\n{call.prompt}" for i, call in enumerate(calls)),
        prompt_hash=hashlib.sha256(",".join(c.prompt_hash for c in calls).encode()).hexdigest(),
        prompt_version=calls[0].prompt_version,
        model=calls[0].model,
        raw_answer="\n\n".join(f"{heading(i)}\n{call.raw_answer}" for i, call in enumerate(calls)),
        cached=all(call.cached for call in calls),
        prompt_tokens=sum(call.prompt_tokens for call in calls),
        completion_tokens=sum(call.completion_tokens for call in calls),
        elapsed_ms=round(sum(call.elapsed_ms for call in calls), 1),
    )


def choose_record(
    workspace: Workspace,
    call: CallView,
    object_type: str,
    candidates: Sequence[Candidate],
    *,
    script_key: str = "",
) -> TieBreak:
    """The model's pick among ``candidates``, or ``record_id`` None with the reason.

    The sandbox's rules model answers extraction and chat requests only and refuses this with a
    400, which surfaces as ModelRejected: the pipeline then leaves the choice to a human
    ("needs a choice"), exactly as it does when a real model cannot tell.
    """
    ordered = ranked(candidates)
    if not ordered:
        raise ValueError("choose_record needs at least one candidate")
    ids = [candidate.id for candidate in ordered]
    response_format = choose_record_format(ids)
    messages = choose_record_messages(call, object_type, ordered)
    exchange = _ask(workspace, messages, response_format, CHOOSE_RECORD_PROMPT_VERSION, script_key)
    record_id, reason = _check_choice(exchange.raw_answer, set(ids))
    return TieBreak(exchange=exchange, record_id=record_id, reason=reason)


# Asking, once per prompt -------------------------------------------------------------------


def prompt_hash(model: str, messages: list[dict], response_format: dict) -> str:
    payload = {"model": model, "messages": messages, "response_format": response_format}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _ask(
    workspace: Workspace,
    messages: list[dict],
    response_format: dict,
    version: str,
    script_key: str,
) -> ModelExchange:
    started = time.monotonic()
    client = model_client()
    model = settings.MODEL_NAME
    digest = prompt_hash(model, messages, response_format)
    exchange = {
        "prompt": _readable(messages, response_format),
        "prompt_hash": digest,
        "prompt_version": version,
        "model": model,
    }
    known = ModelAnswer.objects.filter(workspace=workspace, model=model, prompt_hash=digest).first()
    if known is not None:
        # Nothing was spent this time, so no tokens are counted.
        return ModelExchange(
            **exchange, raw_answer=known.answer, cached=True, elapsed_ms=_since(started)
        )
    completion = complete(
        client, model, messages, script_key=script_key, response_format=response_format
    )
    message = completion.choices[0].message if completion.choices else None
    content = (message.content if message is not None else None) or ""
    usage = completion.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    answer = _remember(workspace, model, digest, content, prompt_tokens, completion_tokens)
    return ModelExchange(
        **exchange,
        raw_answer=answer,
        cached=False,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        elapsed_ms=_since(started),
    )


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def complete(
    client: openai.OpenAI,
    model: str,
    messages: list[dict],
    *,
    script_key: str = "",
    **request: Any,
) -> Any:
    """One Chat Completions request at temperature 0 (``request`` adds ``response_format``
    or ``tools``); the openai library's errors become ModelUnavailable / ModelRejected."""
    extra = (
        {"extra_headers": {SCRIPT_KEY_HEADER: script_key_header(script_key)}} if script_key else {}
    )
    try:
        return client.chat.completions.create(
            model=model, messages=messages, temperature=0, **request, **extra
        )
    except openai.APIConnectionError as exc:  # APITimeoutError included
        raise ModelUnavailable(f"The model endpoint could not be reached: {exc}") from exc
    except (openai.RateLimitError, openai.InternalServerError) as exc:
        raise ModelUnavailable(
            f"The model endpoint is unavailable ({exc.status_code}): {_api_message(exc)}",
            _retry_after(exc.response),
        ) from exc
    except openai.APIStatusError as exc:
        raise ModelRejected(
            f"The model endpoint refused the request ({exc.status_code}): {_api_message(exc)}",
            exc.status_code,
        ) from exc
    except openai.APIError as exc:
        raise ModelRejected(f"The model endpoint's answer could not be read: {exc}") from exc


def script_key_header(script_key: str) -> str:
    """The script key as a header value: header values are ASCII, while the key holds the
    call's external id, which may be any text. Percent-encoded UTF-8 ("appel-caf%C3%A9-1/
    hygiene"); keys of plain letters, digits and ``/-_.~`` are sent unchanged."""
    return quote(script_key, safe="/")


def _remember(
    workspace: Workspace,
    model: str,
    digest: str,
    answer: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> str:
    """Store the answer; when another worker stored one first, theirs is the answer."""
    try:
        row, _ = ModelAnswer.objects.get_or_create(
            workspace=workspace,
            model=model,
            prompt_hash=digest,
            defaults={
                "answer": answer,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
            },
        )
    except IntegrityError:
        # The racing worker's row is not visible to us yet; ours is as good an answer.
        return answer
    return row.answer


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


def _retry_after(response: Any) -> float | None:
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            raw = headers["retry-after"]
            try:
                return max(0.0, float(raw))
            except ValueError:
                return max(0.0, (parsedate_to_datetime(raw) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None
    return None


def _readable(messages: list[dict], response_format: dict) -> str:
    """The prompt as stored on the run: each message, then the schema it answers."""
    parts = [f"[{message['role']}]\n{message['content']}" for message in messages]
    parts.append(f"[response_format]\n{json.dumps(response_format, indent=2, ensure_ascii=False)}")
    return "\n\n".join(parts)


# Holding the answer to the contract -----------------------------------------------------


def _check_extraction(raw: str, inp: ExtractionInput) -> tuple[list[ProposedValue], list[Dropped]]:
    answer, problem = _json_object(raw)
    if problem:
        return [], [Dropped(None, problem, _clip(raw))]
    dropped: list[Dropped] = []
    updates = answer.get("updates")
    if not isinstance(updates, list):
        return [], [Dropped(None, 'the answer has no "updates" list', _clip(raw))]
    extra = sorted(set(answer) - {"updates"})
    for key in extra:
        reason = (
            OTHER_RECORD if key in RECORD_KEYS else f"the answer has a key not asked for: {key}"
        )
        dropped.append(Dropped(None, reason, {key: answer[key]}))
    if RECORD_KEYS & set(extra):
        # The whole answer claims another record: none of its values can be trusted for ours.
        return [], dropped + [Dropped(_field_of(u), OTHER_RECORD, u) for u in updates]
    asks = {ask.name: ask for ask in inp.fields}
    quotes = _Quotes(inp.call)
    values: list[ProposedValue] = []
    answered: set[str] = set()
    for update in updates:
        value, reason = _check_update(update, asks, answered, quotes)
        if reason:
            dropped.append(Dropped(_field_of(update), reason, update))
        elif value is not None:
            values.append(value)
    return values, dropped


def _check_update(
    update: object, asks: dict, answered: set[str], quotes: "_Quotes"
) -> tuple[ProposedValue | None, str | None]:
    if not isinstance(update, dict):
        return None, f"an update is {_json_type(update)}, not an object"
    extra = sorted(set(update) - set(UPDATE_KEYS))
    if RECORD_KEYS & set(extra):
        return None, f"{OTHER_RECORD} (key: {', '.join(sorted(RECORD_KEYS & set(extra)))})"
    if extra:
        return None, f"the update has keys that were not asked for: {', '.join(extra)}"
    missing = [key for key in UPDATE_KEYS if key not in update]
    if missing:
        return None, f"the update lacks {', '.join(missing)}"
    name = update["field"]
    if not isinstance(name, str) or name not in asks:
        return None, f"the model named a field it was not asked for: {name}"
    if name in answered:
        return None, f"the model answered {name} more than once; only its first answer counts"
    answered.add(name)
    value = update["value"]
    if value is None:
        return None, None  # not said in the call: nothing to propose, nothing refused
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"value of the wrong type ({_json_type(value)}); expected a string or number"
    if isinstance(value, float) and not math.isfinite(value):
        return None, "value of the wrong type (not a finite number)"
    confidence = update["confidence"]
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0 <= confidence <= 1
    ):
        return None, f"the confidence is not a number from 0 to 1: {confidence!r}"
    evidence = update["evidence"]
    if not isinstance(evidence, str):
        return None, f"the evidence is {_json_type(evidence)}, not a quote"
    start, problem = quotes.find(evidence)
    if problem:
        return None, problem
    ask = asks[name]
    return (
        ProposedValue(
            field=name,
            native=ask.native,
            raw_value=value,
            evidence=evidence.strip(),
            evidence_start=start,
            confidence=float(confidence),
        ),
        None,
    )


class _Quotes:
    """Finds a quote in one transcript line, ignoring case and runs of whitespace."""

    def __init__(self, call: CallView) -> None:
        self.turns = [(turn.start, _normal(one_line(turn.text))) for turn in transcript_turns(call)]
        self.whole = " ".join(text for _, text in self.turns)

    def find(self, quote: str) -> tuple[float | None, str | None]:
        needle = _normal(quote)
        if not needle:
            return None, f"{NOT_A_QUOTE} (it is empty)"
        for start, text in self.turns:
            if needle in text:
                return start, None
        if needle in self.whole:
            return None, f"{NOT_A_QUOTE} (it joins several lines; quote one)"
        return None, NOT_A_QUOTE


def _check_choice(raw: str, ids: set[str]) -> tuple[str | None, str]:
    answer, problem = _json_object(raw)
    if problem:
        return None, problem
    extra = sorted(set(answer) - {"record", "reason"})
    if extra:
        return None, f"the answer has keys that were not asked for: {', '.join(extra)}"
    if "record" not in answer:
        return None, 'the answer names no "record"'
    reason = answer.get("reason")
    reason = one_line(reason) if isinstance(reason, str) else ""
    record = answer["record"]
    if record is None:
        return None, f"the model could not tell: {reason}" if reason else "the model could not tell"
    if not isinstance(record, str) or record not in ids:
        return None, f"the model chose a record that was not a candidate: {record}"
    return record, reason


def _json_object(raw: str) -> tuple[dict, str | None]:
    if not raw.strip():
        return {}, "the answer is empty"
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        return {}, f"the answer is not JSON ({exc})"
    if not isinstance(answer, dict):
        return {}, f"the answer is {_json_type(answer)}, not a JSON object"
    return answer, None


def _field_of(update: object) -> str | None:
    if isinstance(update, dict) and isinstance(update.get("field"), str):
        return update["field"]
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}"


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _clip(raw: str, limit: int = 500) -> str:
    return raw if len(raw) <= limit else f"{raw[:limit]}…"
