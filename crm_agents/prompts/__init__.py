"""The agent's prompts: versioned templates in this folder, rendered deterministically.

Same input, same bytes (DESIGN.md invariant 5): nothing here reads the clock, and lists
whose order means nothing (attendees, context fields, candidate fields) are sorted. Changing
a template's meaning means a new file and a new version, so stored runs keep naming the
prompt they were made with.

Every interpolated value sits after a label on a line of its own with its line breaks
collapsed, so nothing a caller or a CRM record holds can forge the transcript markers or the
``Call date`` line that the sandbox's rules model reads (integrations/sandbox/
extractor_contract.py).
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from string import Template

from crm_agents.types import (
    CallView,
    Candidate,
    ContextField,
    CurrentValue,
    ExtractionInput,
    FieldAsk,
)
from integrations.crm.types import PropertyType
from integrations.sandbox.extractor_contract import (
    FieldOption,
    FieldRequest,
    FieldType,
    Turn,
    render_transcript,
)

PROMPT_VERSION = "extract-v1"
CHOOSE_RECORD_PROMPT_VERSION = "choose-record-v1"
# A current value longer than this is cut in the prompt; the model needs its gist, not all.
MAX_VALUE_CHARS = 2000

_DIR = Path(__file__).resolve().parent
_FIELD_TYPES = {
    PropertyType.NUMBER: FieldType.NUMBER,
    PropertyType.DATE: FieldType.DATE,
    PropertyType.DATETIME: FieldType.DATETIME,
    PropertyType.ENUMERATION: FieldType.ENUMERATION,
    PropertyType.BOOL: FieldType.BOOL,
}
_TYPE_HINTS = {
    FieldType.STRING: "text",
    FieldType.NUMBER: "number",
    FieldType.DATE: "date (YYYY-MM-DD)",
    FieldType.DATETIME: "date-time (ISO 8601, UTC)",
    FieldType.ENUMERATION: "one of the options",
    FieldType.BOOL: 'yes/no ("true" or "false")',
}
_WRITE_MODES = {
    "overwrite": "overwrite (your value replaces the current one)",
    "append": "append (your value is added after the current one; give only what is new)",
    "append_if_different": "append_if_different (added after the current one unless it "
    "says the same; give only what is new)",
    "fill_empty": "fill_empty (written only while the field is empty)",
}


@cache
def template(name: str) -> str:
    """The text of ``<name>.txt`` in this folder (``extract_v1.system``)."""
    return (_DIR / f"{name}.txt").read_text(encoding="utf-8")


def _files(version: str) -> str:
    return version.replace("-", "_")


def field_request(ask: FieldAsk) -> FieldRequest:
    """How a field is asked for in the response schema: its CRM type mapped to the
    contract's, enumerations with their options."""
    field_type = _FIELD_TYPES.get(ask.spec.type, FieldType.STRING)
    options: tuple[FieldOption, ...] = ()
    if field_type == FieldType.ENUMERATION:
        unique = {option.value: option for option in reversed(ask.spec.options)}
        options = tuple(
            FieldOption(option.value, one_line(option.label) or option.value)
            for option in ask.spec.options
            if unique.get(option.value) is option
        )
        if not options:  # an enumeration without options can only be asked as text
            field_type = FieldType.STRING
    return FieldRequest(
        ask.name, field_type, one_line(ask.instruction), options, one_line(ask.spec.label)
    )


def transcript_turns(call: CallView) -> tuple[Turn, ...]:
    """The call's turns as the contract renders them, each speaker's side taken from the
    attendee list by name (unknown when the name is missing or on both sides)."""
    sides: dict[str, set[bool]] = {}
    for attendee in call.attendees:
        sides.setdefault(_person(attendee.name), set()).add(not attendee.internal)
    turns = []
    for turn in call.transcript:
        side = sides.get(_person(turn.speaker), set())
        external = next(iter(side)) if len(side) == 1 else None
        turns.append(Turn(turn.speaker, turn.start, turn.text, external))
    return tuple(turns)


def extraction_messages(inp: ExtractionInput) -> list[dict[str, str]]:
    system = template(f"{_files(PROMPT_VERSION)}.system").strip()
    if inp.policy_section.strip():
        system = f"{system}\n\n{inp.policy_section.strip()}"
    fields = [field_request(ask) for ask in inp.fields]
    context = sorted(inp.context, key=lambda c: c.name)
    user = Template(template(f"{_files(PROMPT_VERSION)}.user")).substitute(
        object_type=inp.object_type,
        record_name=_text(inp.record_name),
        fields="\n".join(_field_block(a, f) for a, f in zip(inp.fields, fields, strict=True)),
        context="\n".join(_context_line(c) for c in context) or "(none)",
        **_call_parts(inp.call),
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user.strip()}]


def choose_record_messages(
    call: CallView, object_type: str, candidates: Sequence[Candidate]
) -> list[dict[str, str]]:
    version = _files(CHOOSE_RECORD_PROMPT_VERSION)
    user = Template(template(f"{version}.user")).substitute(
        object_type=object_type,
        candidates="\n".join(_candidate_block(c) for c in candidates),
        **_call_parts(call),
    )
    return [
        {"role": "system", "content": template(f"{version}.system").strip()},
        {"role": "user", "content": user.strip()},
    ]


def choose_record_format(ids: Sequence[str]) -> dict:
    """The ``response_format`` of a tie-break: one of the candidate ids, or null."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "choose_record",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["record", "reason"],
                "properties": {
                    # null lets the model say it cannot tell, instead of forcing a guess.
                    "record": {"type": ["string", "null"], "enum": [*ids, None]},
                    "reason": {"type": "string"},
                },
            },
        },
    }


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates in a stable order whatever order they came in: best score first."""
    unique = {candidate.id: candidate for candidate in reversed(candidates)}
    return sorted(unique.values(), key=lambda c: (-c.score, c.name, c.id))


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _person(name: str) -> str:
    return one_line(name).casefold()


def _text(value: str) -> str:
    return json.dumps(one_line(value), ensure_ascii=False)


def _value(value: object) -> str:
    if value is None or value == "":
        return "empty"
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        cut = len(text) - MAX_VALUE_CHARS
        text = f"{text[:MAX_VALUE_CHARS]}… ({cut} more characters)"
    return json.dumps(text, ensure_ascii=False)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _current(current: CurrentValue) -> str:
    value = _value(current.value)
    if current.modified_at is None:
        return value
    return f"{value} (last changed in the CRM {_when(current.modified_at)})"


def _field_block(ask: FieldAsk, request: FieldRequest) -> str:
    lines = [f"- {ask.name}"]
    if request.label:
        lines.append(f"  label: {_text(request.label)}")
    lines.append(f"  type: {_TYPE_HINTS[request.type]}")
    if request.options:
        options = ", ".join(
            f"{json.dumps(o.value, ensure_ascii=False)} ({one_line(o.label)})"
            for o in request.options
        )
        lines.append(f"  options: {options}")
    lines.append(f"  instruction: {request.instruction or '(none)'}")
    lines.append(f"  write mode: {_WRITE_MODES.get(ask.write_mode, one_line(ask.write_mode))}")
    lines.append(f"  current value: {_current(ask.current)}")
    return "\n".join(lines)


def _context_line(context: ContextField) -> str:
    label = f" ({one_line(context.label)})" if context.label else ""
    return f"- {context.name}{label}: {_current(context.current)}"


def _candidate_block(candidate: Candidate) -> str:
    lines = [
        f"- id: {json.dumps(candidate.id)}",
        f"  name: {_text(candidate.name)}",
        f"  match score: {candidate.score:.2f}",
    ]
    if candidate.reasons:
        lines.append(
            f"  why it may be this one: {'; '.join(one_line(r) for r in candidate.reasons)}"
        )
    for name in sorted(candidate.properties):
        lines.append(f"  {one_line(name)}: {_value(candidate.properties[name])}")
    return "\n".join(lines)


def _call_parts(call: CallView) -> dict[str, str]:
    attendees = sorted(call.attendees, key=lambda a: (_person(a.name), a.email.casefold()))
    minutes, seconds = divmod(call.duration_s, 60)
    return {
        "title": _text(call.title),
        "started_at": _when(call.started_at),
        "duration": f"{minutes} min {seconds} s",
        "attendees": "\n".join(
            f"- {one_line(a.name) or 'Unknown'} <{one_line(a.email)}>, "
            f"{'internal' if a.internal else 'external'}"
            for a in attendees
        )
        or "(none listed)",
        "transcript": render_transcript(transcript_turns(call), call.call_date),
    }
