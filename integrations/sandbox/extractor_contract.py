"""Typed extraction requests and answers, and the wire contract in both directions.

The contract is documented in :mod:`integrations.sandbox.extractor`. The prompt builder calls
``build_response_format`` and ``render_transcript``; the model emulator calls ``parse_request``.
Keeping both directions in one module is what stops them from drifting apart.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

SCHEMA_NAME = "extraction"
TRANSCRIPT_START = "<<<TRANSCRIPT"
TRANSCRIPT_END = "TRANSCRIPT>>>"
CALL_DATE_PREFIX = "Call date: "
EVIDENCE_HINT = "The transcript sentence the value comes from, copied verbatim; empty if null."
CONFIDENCE_HINT = "From 0 to 1; 0 when value is null."
# Heads the value description of an enumeration whose options the schema cannot enforce
# (too many for OpenAI's limits); a JSON list of [value, label] pairs follows it.
OPTIONS_HINT = "One of these options, as [value, label]; answer the value: "

_CALL_DATE_LINE = re.compile(r"Call date: (\d{4}-\d{2}-\d{2})")
_TURN_LINE = re.compile(
    r"\[(\d{2,}):([0-5]\d):([0-5]\d)\] (.+?)(?: \((external|internal)\))?: (.*)"
)


class ExtractionRequestError(ValueError):
    """A request that does not follow the extraction contract; the message names the spot."""


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    ENUMERATION = "enumeration"
    BOOL = "bool"


@dataclass(frozen=True)
class FieldOption:
    value: str
    label: str


@dataclass(frozen=True)
class FieldRequest:
    """One field the model is asked for: its prompt name, type and the user's instruction.

    ``constrained`` False leaves an enumeration's options out of the schema's constraints (a
    picklist too large for a structured-output schema): the schema then lists them in the
    value's description, and whoever reads the answer checks the option.
    """

    name: str
    type: FieldType
    instruction: str
    options: tuple[FieldOption, ...] = ()
    label: str = ""
    constrained: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ExtractionRequestError("a field needs a name")
        if (self.type == FieldType.ENUMERATION) != bool(self.options):
            raise ExtractionRequestError(
                f"field {self.name!r}: options are required for enumerations and only for them"
            )
        if not self.constrained and self.type != FieldType.ENUMERATION:
            raise ExtractionRequestError(
                f"field {self.name!r}: only an enumeration's options can be left unconstrained"
            )
        values = [option.value for option in self.options]
        if len(set(values)) != len(values):
            raise ExtractionRequestError(f"field {self.name!r}: option values must be unique")


@dataclass(frozen=True)
class Turn:
    """One utterance. ``external`` is None when the speaker's side is unknown."""

    speaker: str
    start: float
    text: str
    external: bool | None = None


@dataclass(frozen=True)
class ExtractionRequest:
    fields: tuple[FieldRequest, ...]
    turns: tuple[Turn, ...]
    call_date: date


@dataclass(frozen=True)
class Update:
    field: str
    value: str | int | float | None
    evidence: str
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "value": self.value,
            "evidence": self.evidence,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class ExtractionAnswer:
    updates: tuple[Update, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"updates": [update.as_dict() for update in self.updates]}

    def to_json(self) -> str:
        """The answer as the emulator sends it; fixed key order and separators keep the
        bytes identical across runs, which the prompt-hash cache relies on."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


def build_response_format(fields: Sequence[FieldRequest]) -> dict[str, Any]:
    """The ``response_format`` of a Chat Completions extraction request for ``fields``."""
    if not fields:
        raise ExtractionRequestError("an extraction request needs at least one field")
    names = [field.name for field in fields]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ExtractionRequestError(f"field names must be unique; repeated: {duplicates}")
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": _answer_schema(fields)},
    }


def render_transcript(turns: Sequence[Turn], call_date: date) -> str:
    """The ``Call date`` line and the transcript block for the user message.

    Line breaks inside a turn become single spaces (the block is line-based), so evidence
    must be checked against the rendered text. Colons, brackets and parentheses in speaker
    names become spaces: they delimit the line, and a name such as "Mallory (internal)" must
    not pass for a side tag.
    """
    lines = [f"{CALL_DATE_PREFIX}{call_date.isoformat()}", TRANSCRIPT_START]
    for turn in turns:
        if turn.start < 0:
            raise ExtractionRequestError(f"turn of {turn.speaker!r} starts before the call")
        seconds = int(turn.start)
        stamp = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        speaker = " ".join(re.sub(r"[:()\[\]]", " ", turn.speaker).split()) or "Unknown speaker"
        side = {True: " (external)", False: " (internal)", None: ""}[turn.external]
        lines.append(f"[{stamp}] {speaker}{side}: {one_line(turn.text)}")
    lines.append(TRANSCRIPT_END)
    return "\n".join(lines)


def one_line(text: str) -> str:
    """A turn's text as it appears in the rendered transcript."""
    return re.sub(r"[\r\n]+", " ", text)


def parse_request(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> ExtractionRequest:
    """Read the fields, the transcript and the call date from a Chat Completions request."""
    fields = _parse_fields(response_format)
    call_date, turns = _parse_transcript_message(messages)
    return ExtractionRequest(fields=fields, turns=turns, call_date=call_date)


def _answer_schema(fields: Sequence[FieldRequest]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["updates"],
        "properties": {
            "updates": {"type": "array", "items": {"anyOf": [field_branch(f) for f in fields]}}
        },
    }


def field_branch(field: FieldRequest) -> dict[str, Any]:
    """The schema of one field's update: one branch of ``updates.items.anyOf``."""
    branch: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if field.label:
        branch["title"] = field.label
    branch["description"] = field.instruction
    branch["required"] = ["field", "value", "evidence", "confidence"]
    branch["properties"] = {
        "field": {"type": "string", "const": field.name},
        "value": _value_schema(field),
        "evidence": {"type": "string", "description": EVIDENCE_HINT},
        "confidence": {"type": "number", "description": CONFIDENCE_HINT},
    }
    return branch


def _value_schema(field: FieldRequest) -> dict[str, Any]:
    # ``title`` carries the field type: ``format`` alone cannot tell a bool from an
    # enumeration, and OpenAI's strict mode accepts ``title`` as an annotation.
    title = {"title": field.type.value}
    match field.type:
        case FieldType.STRING:
            return {**title, "type": ["string", "null"]}
        case FieldType.NUMBER:
            return {**title, "type": ["number", "null"]}
        case FieldType.DATE:
            return {**title, "type": ["string", "null"], "format": "date"}
        case FieldType.DATETIME:
            return {**title, "type": ["string", "null"], "format": "date-time"}
        case FieldType.BOOL:
            return {**title, "type": ["string", "null"], "enum": ["true", "false", None]}
        case FieldType.ENUMERATION if not field.constrained:
            pairs = [[option.value, option.label] for option in field.options]
            listed = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
            return {**title, "type": ["string", "null"], "description": OPTIONS_HINT + listed}
        case FieldType.ENUMERATION:
            choices = [
                {"type": "string", "const": option.value, "title": option.label}
                for option in field.options
            ]
            return {**title, "anyOf": [*choices, {"type": "null"}]}


def _member(container: Any, key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(container, Mapping):
        raise ExtractionRequestError(f"{path} must be an object")
    if key not in container:
        raise ExtractionRequestError(f"{path}.{key} is missing")
    value = container[key]
    if not isinstance(value, kind):
        raise ExtractionRequestError(f"{path}.{key} has the wrong type")
    return value


def _parse_fields(response_format: Mapping[str, Any] | None) -> tuple[FieldRequest, ...]:
    path = "response_format"
    if response_format is None:
        raise ExtractionRequestError("response_format is missing; extraction needs json_schema")
    if _member(response_format, "type", path, str) != "json_schema":
        raise ExtractionRequestError(f"{path}.type must be 'json_schema'")
    wrapper = _member(response_format, "json_schema", path, Mapping)
    path += ".json_schema"
    if _member(wrapper, "name", path, str) != SCHEMA_NAME:
        raise ExtractionRequestError(f"{path}.name must be {SCHEMA_NAME!r}")
    schema = _member(wrapper, "schema", path, Mapping)
    path += ".schema"
    properties = _member(schema, "properties", path, Mapping)
    updates = _member(properties, "updates", f"{path}.properties", Mapping)
    items = _member(updates, "items", f"{path}.properties.updates", Mapping)
    items_path = f"{path}.properties.updates.items"
    branches = _member(items, "anyOf", items_path, list)
    if not branches:
        raise ExtractionRequestError(f"{items_path}.anyOf is empty; no field was requested")
    fields = tuple(
        _parse_branch(branch, f"{items_path}.anyOf[{index}]")
        for index, branch in enumerate(branches)
    )
    expected = build_response_format(fields)["json_schema"]["schema"]
    if schema != expected:
        raise ExtractionRequestError(
            f"{path} differs from what build_response_format makes for these fields"
        )
    return fields


def _parse_branch(branch: Any, path: str) -> FieldRequest:
    properties = _member(branch, "properties", path, Mapping)
    field_schema = _member(properties, "field", f"{path}.properties", Mapping)
    name = _member(field_schema, "const", f"{path}.properties.field", str)
    instruction = _member(branch, "description", path, str)
    label = _member(branch, "title", path, str) if "title" in branch else ""
    value_path = f"{path}.properties.value"
    value_schema = _member(properties, "value", f"{path}.properties", Mapping)
    type_name = _member(value_schema, "title", value_path, str)
    try:
        field_type = FieldType(type_name)
    except ValueError:
        known = ", ".join(t.value for t in FieldType)
        raise ExtractionRequestError(
            f"{value_path}.title {type_name!r} is not a field type ({known})"
        ) from None
    options: tuple[FieldOption, ...] = ()
    constrained = "anyOf" in value_schema or field_type != FieldType.ENUMERATION
    if field_type == FieldType.ENUMERATION and constrained:
        choices = _member(value_schema, "anyOf", value_path, list)
        options = tuple(
            FieldOption(
                value=_member(choice, "const", f"{value_path}.anyOf[{i}]", str),
                label=_member(choice, "title", f"{value_path}.anyOf[{i}]", str),
            )
            for i, choice in enumerate(choices[:-1])
        )
    elif field_type == FieldType.ENUMERATION:
        options = _listed_options(_member(value_schema, "description", value_path, str), value_path)
    try:
        field = FieldRequest(name, field_type, instruction, options, label, constrained)
    except ExtractionRequestError as error:
        raise ExtractionRequestError(f"{path}: {error}") from None
    if branch != field_branch(field):
        raise ExtractionRequestError(
            f"{path} (field {name!r}) is not the canonical {field_type.value!r} branch"
        )
    return field


def _listed_options(description: str, path: str) -> tuple[FieldOption, ...]:
    """The options an unconstrained enumeration lists in its value's description."""
    if not description.startswith(OPTIONS_HINT):
        raise ExtractionRequestError(f"{path}.description does not list the options")
    try:
        pairs = json.loads(description.removeprefix(OPTIONS_HINT))
    except ValueError:
        raise ExtractionRequestError(
            f"{path}.description lists options that are not JSON"
        ) from None
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        for pair in pairs
    ):
        raise ExtractionRequestError(f"{path}.description must list [value, label] pairs")
    return tuple(FieldOption(value, label) for value, label in pairs)


def _message_text(message: Any, index: int) -> str:
    content = _member(message, "content", f"messages[{index}]", (str, list))
    if isinstance(content, str):
        return content
    # The list form of content: only text parts can carry the transcript.
    parts = []
    for part_index, part in enumerate(content):
        path = f"messages[{index}].content[{part_index}]"
        if _member(part, "type", path, str) == "text":
            parts.append(_member(part, "text", path, str))
    return "".join(parts)


def _parse_transcript_message(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[date, tuple[Turn, ...]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ExtractionRequestError("messages must be a list of message objects")
    holders = []
    for index, message in enumerate(messages):
        if _member(message, "role", f"messages[{index}]", str) != "user":
            continue
        lines = [line.removesuffix("\r") for line in _message_text(message, index).split("\n")]
        if TRANSCRIPT_START in lines:
            holders.append((index, lines))
    if not holders:
        raise ExtractionRequestError(f"no user message holds a {TRANSCRIPT_START!r} line")
    # A prompt may show earlier examples; the transcript to extract from is the last one.
    index, lines = holders[-1]
    path = f"messages[{index}]"
    start = lines.index(TRANSCRIPT_START)
    if TRANSCRIPT_END not in lines[start:]:
        raise ExtractionRequestError(f"{path}: {TRANSCRIPT_START!r} has no {TRANSCRIPT_END!r}")
    end = lines.index(TRANSCRIPT_END, start)
    if TRANSCRIPT_START in lines[start + 1 :]:
        raise ExtractionRequestError(f"{path}: more than one transcript block")
    body = lines[start + 1 : end]
    outside = lines[:start] + lines[end + 1 :]
    dates = [m.group(1) for line in outside if (m := _CALL_DATE_LINE.fullmatch(line.strip()))]
    if len(dates) != 1:
        raise ExtractionRequestError(
            f"{path}: needs exactly one 'Call date: YYYY-MM-DD' line outside the transcript, "
            f"found {len(dates)}"
        )
    try:
        call_date = date.fromisoformat(dates[0])
    except ValueError:
        raise ExtractionRequestError(f"{path}: call date {dates[0]!r} is not a date") from None
    turns = tuple(
        _parse_turn(line, f"{path} transcript line {number}")
        for number, line in enumerate(body, start=1)
        if line.strip()
    )
    return call_date, turns


def _parse_turn(line: str, path: str) -> Turn:
    match = _TURN_LINE.fullmatch(line)
    if match is None:
        raise ExtractionRequestError(
            f"{path} is not '[HH:MM:SS] Speaker (external|internal): text': {line[:80]!r}"
        )
    hours, minutes, seconds, speaker, side, text = match.groups()
    external = None if side is None else side == "external"
    start = float(int(hours) * 3600 + int(minutes) * 60 + int(seconds))
    return Turn(speaker=speaker, start=start, text=text, external=external)
