"""The one body format the API reads: JSON, checked before any view sees it.

Refused with 400: JSON nested deeper than ``MAX_DEPTH`` (a hostile body 100,000 levels deep
would otherwise exhaust the parser's stack), and text that no database column can hold —
a NUL character (PostgreSQL refuses it) or a lone UTF-16 surrogate (not encodable). Those
errors name the value's dotted path, like every other bad value.
"""

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

# No body the API accepts is deeper than 4 levels; 32 leaves room and stops abuse.
MAX_DEPTH = 32


class ApiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        check_json(data)
        return data


def check_json(data: object) -> None:
    """Raise ParseError for nesting past MAX_DEPTH, ValidationError for unstorable text."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[object, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    errors.setdefault(_dotted(path), []).append(f"A field name {problem}")
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(index))) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = text_problem(value)
            if problem:
                errors.setdefault(_dotted(path), []).append(f"The text {problem}")
    if errors:
        raise ValidationError(errors)


def text_problem(text: str) -> str:
    """What makes ``text`` unstorable, as the end of a sentence; "" if nothing."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)."
    return ""


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) or api_settings.NON_FIELD_ERRORS_KEY
