"""HubSpot's 400 answer to a bad CRM search body, worded the way HubSpot's Java service words it.

HubSpot reads the body with Jackson, so many refusals start ``Invalid input JSON on line L,
column C:`` followed by Jackson's own sentence (captured examples: ``Cannot build Filter, some of
required attributes are not set [propertyName, operator]`` and ``Cannot construct instance of
`...search.Filter`, problem: operator BETWEEN requires a highValue``, both placed on the
filter's closing brace). :class:`JsonLocator` finds those lines and columns in the raw body.
"""

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

FILTER_CLASS = "com.hubspot.inbounddb.publicobject.core.v3.search.Filter"
_WHITESPACE = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


class HubSpotSearchError(Exception):
    """A search request HubSpot answers with 400 and ``category: VALIDATION_ERROR``."""

    status = 400
    category = "VALIDATION_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_response(self, correlation_id: str | None = None) -> dict[str, Any]:
        """The error body; a fresh correlation id is made when none is given."""
        return {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id or str(uuid.uuid4()),
            "category": self.category,
        }


class JsonLocator:
    """Line and column (both 1-based, as Jackson counts) of values inside a raw JSON text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def span(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Start and end offsets of the value at ``path``; the deepest existing value when the
        path goes further than the document does."""
        start = self._skip(0)
        for step in path:
            child = self._child(start, step)
            if child is None:
                break
            start = child
        return start, _DECODER.raw_decode(self.text, start)[1]

    def position(self, offset: int) -> str:
        line_start = self.text.rfind("\n", 0, offset) + 1
        line = self.text.count("\n", 0, offset) + 1
        return f"line {line}, column {offset - line_start + 1}"

    def at_start(self, path: Sequence[str | int], text: str) -> HubSpotSearchError:
        """An error placed on the first character of the value at ``path``."""
        return HubSpotSearchError(self._invalid(self.span(path)[0], text))

    def at_end(self, path: Sequence[str | int], text: str) -> HubSpotSearchError:
        """An error placed on the last character (a closing brace) of the value at ``path``."""
        return HubSpotSearchError(self._invalid(self.span(path)[1] - 1, text))

    def _invalid(self, offset: int, text: str) -> str:
        return f"Invalid input JSON on {self.position(offset)}: {text}"

    def _skip(self, offset: int) -> int:
        match = _WHITESPACE.match(self.text, offset)
        return match.end() if match else offset

    def _child(self, start: int, step: str | int) -> int | None:
        opening = self.text[start : start + 1]
        if opening not in ("{", "[") or (opening == "{") != isinstance(step, str):
            return None
        closing = "}" if opening == "{" else "]"
        offset, index = self._skip(start + 1), 0
        while offset < len(self.text) and self.text[offset] != closing:
            key = None
            if opening == "{":
                key, offset = _DECODER.raw_decode(self.text, offset)
                offset = self._skip(self._skip(offset) + 1)
            if key == step or index == step:
                return offset
            offset = self._skip(_DECODER.raw_decode(self.text, offset)[1])
            if self.text[offset : offset + 1] == ",":
                offset = self._skip(offset + 1)
            index += 1
        return None


def token_description(value: object) -> str:
    """Jackson's words for the JSON token that ``value`` was read from."""
    if isinstance(value, list):
        return "Array value (token `JsonToken.START_ARRAY`)"
    if isinstance(value, dict):
        return "Object value (token `JsonToken.START_OBJECT`)"
    if isinstance(value, bool):
        return f"Boolean value (token `JsonToken.VALUE_{str(value).upper()}`)"
    if isinstance(value, int | float):
        return f"Number value ({value})"
    if value is None:
        return "Null value (token `JsonToken.VALUE_NULL`)"
    return f"String value ({json.dumps(value)})"


def java_type(path: Sequence[str | int]) -> str:
    """The Java type HubSpot deserializes the value at ``path`` into."""
    last = path[-1] if path else None
    if last == "limit":
        return "int"
    if last in ("filterGroups", "filters", "sorts", "values", "properties"):
        return "java.util.List"
    if isinstance(last, int):
        parent = path[-2]
        return {
            "filterGroups": "com.hubspot.inbounddb.publicobject.core.v3.search.FilterGroup",
            "filters": FILTER_CLASS,
        }.get(str(parent), "java.lang.String")
    if last is None:
        return "com.hubspot.inbounddb.publicobject.core.v3.search.PublicObjectSearchRequest"
    return "java.lang.String"
