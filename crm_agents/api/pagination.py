"""Lists are paged by ``limit`` and ``offset``: ``limit`` from 1 (50 when left out), capped
at ``MAX_LIMIT`` however many digits it has; ``offset`` from 0 to ``MAX_OFFSET``. A negative
or non-numeric value, or an offset past the maximum, is a 400 naming the parameter, never a
silent default."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500
MAX_OFFSET = 2**31 - 1


def _whole_number(request, name: str, lowest: int, cap: int) -> int | None:
    """The parameter as a number from ``lowest`` up, at most ``cap``; None if absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdecimal()):
        raise ValidationError({name: [f"Give a whole number from {lowest} up, not {raw[:40]!r}."]})
    digits = raw.lstrip("0") or "0"
    # More digits than any cap: never converted, so a 10,000-digit value costs nothing.
    value = cap + 1 if len(digits) > 19 else min(int(digits), cap + 1)
    if value < lowest:
        raise ValidationError({name: [f"Give a whole number from {lowest} up, not {raw[:40]!r}."]})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT
    limit_query_description = (
        f"How many results per page, from 1 (50 by default); more than {MAX_LIMIT} "
        f"gives {MAX_LIMIT}."
    )
    offset_query_description = f"How many results to skip: 0 (the default) to {MAX_OFFSET}."

    def paginate_queryset(self, queryset, request, view=None):
        # Both checked before the count query, so a bad value costs nothing.
        self.get_offset(request)
        return super().paginate_queryset(queryset, request, view)

    def get_limit(self, request) -> int:
        limit = _whole_number(request, self.limit_query_param, 1, MAX_LIMIT)
        return self.default_limit if limit is None else min(limit, MAX_LIMIT)

    def get_offset(self, request) -> int:
        offset = _whole_number(request, self.offset_query_param, 0, MAX_OFFSET)
        if offset is not None and offset > MAX_OFFSET:
            raise ValidationError({self.offset_query_param: [f"At most {MAX_OFFSET}."]})
        return offset or 0

    def get_schema_operation_parameters(self, view) -> list[dict]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1}
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
        return [limit, offset]
