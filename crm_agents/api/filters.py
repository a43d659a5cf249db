"""Query parameters, checked like bodies: each list declares its filters with their kind
(an id, a choice, true/false or free text), so a value of the wrong kind is a 400 naming
the parameter, and the schema shows the same rules (ApiAutoSchema in schema.py).

No query parameter may carry text a database cannot compare (a NUL character): that is a
400 too, whether the view reads the parameter or not.
"""

from dataclasses import dataclass

from django.db.models import Choices, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from crm_agents.api.parsers import text_problem

MAX_ID = 2**63 - 1  # a BigAutoField's largest value, on every database
MAX_TEXT = 255
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def parse_id(raw: str) -> int | None:
    """``raw`` as an id (1 to MAX_ID, decimal digits only), else None."""
    digits = raw.lstrip("0")
    if not (raw.isascii() and raw.isdecimal()) or not digits or len(digits) > 19:
        return None
    value = int(digits)
    return value if value <= MAX_ID else None


def check_query_params(request: Request) -> None:
    errors = {}
    for name, values in request.query_params.lists():
        for text in (name, *values):
            problem = text_problem(text)
            if problem:
                errors.setdefault(name.replace("\x00", "\\u0000"), []).append(f"The text {problem}")
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class ListFilter:
    """``?<name>=`` filters ``lookup``; ``kind`` is "id", "text", "bool" or a Choices class."""

    lookup: str
    kind: str | type[Choices] = "text"
    description: str = ""

    def parse(self, name: str, raw: str) -> object:
        if self.kind == "id":
            value = parse_id(raw)
            if value is None:
                raise ValidationError({name: [f"{raw[:40]!r} is not an id."]})
            return value
        if self.kind == "bool":
            if raw not in ("true", "false"):
                raise ValidationError({name: ["Use true or false."]})
            return raw == "true"
        if isinstance(self.kind, type):
            if raw not in self.kind.values:
                choices = ", ".join(self.kind.values)
                raise ValidationError({name: [f"{raw[:40]!r} is not one of: {choices}."]})
        elif len(raw) > MAX_TEXT:
            raise ValidationError({name: [f"At most {MAX_TEXT} characters."]})
        return raw

    def parameter(self, name: str) -> OpenApiParameter:
        if self.kind == "id":
            schema: object = _ID_SCHEMA
        elif self.kind == "bool":
            schema = {"type": "string", "enum": ["true", "false"]}
        elif isinstance(self.kind, type):
            schema = {"type": "string", "enum": list(self.kind.values)}
        else:
            schema = {"type": "string", "maxLength": MAX_TEXT}
        return OpenApiParameter(name, schema, description=self.description or f"Only this {name}.")


def apply_filters(queryset: QuerySet, request: Request, filters: dict[str, ListFilter]) -> QuerySet:
    for name, spec in filters.items():
        raw = request.query_params.get(name)
        # An empty text filter means no filter; an empty id, choice or true/false is a 400.
        if raw is None or (raw == "" and spec.kind == "text"):
            continue
        queryset = queryset.filter(**{spec.lookup: spec.parse(name, raw)})
    return queryset
