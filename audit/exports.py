"""CSV and JSON renderings of a list of audit events, streamed row by row."""

import csv
import json
from collections.abc import Iterator

from django.db.models import QuerySet

from audit.models import AuditEvent

COLUMNS = (
    "workspace",
    "sequence",
    "at",
    "actor_kind",
    "actor_label",
    "action",
    "outcome",
    "crm",
    "object_type",
    "record_id",
    "field",
    "before",
    "after",
    "connection_label",
    "scope",
    "workflow_label",
    "call_label",
    "run_label",
    "reason",
    "context",
    "previous_hash",
    "hash",
)
_JSON_COLUMNS = {"before", "after", "context"}
# A spreadsheet runs a cell that starts with one of these as a formula; reasons and labels
# can carry text from a transcript, so such cells are quoted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_dict(event: AuditEvent) -> dict[str, object]:
    row = {name: getattr(event, name) for name in COLUMNS if name != "workspace"}
    row["at"] = event.at.isoformat()
    return {"workspace": event.workspace.slug, **row}


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for event in _each(events):
        row = as_dict(event)
        yield writer.writerow([_csv_cell(name, row[name]) for name in COLUMNS])


def json_chunks(events: QuerySet[AuditEvent]) -> Iterator[str]:
    yield "["
    separator = "\n"
    for event in _each(events):
        yield separator + json.dumps(as_dict(event), ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def _each(events: QuerySet[AuditEvent]) -> Iterator[AuditEvent]:
    return events.select_related("workspace").iterator(chunk_size=2000)


def _csv_cell(name: str, value: object) -> object:
    if name in _JSON_COLUMNS:
        value = "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value
