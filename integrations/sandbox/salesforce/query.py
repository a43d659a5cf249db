"""SOQL through ``query/`` and ``queryAll/``: the user's rows, batches and query locators.

The SOQL modules (integrations/sandbox/soql*.py) parse, check and evaluate; this module
feeds them what the user may see (Org: sharing filters rows, field-level security shapes the
catalog, so a hidden field fails like a missing one) and pages the result the way the REST
API does: at most ``batchSize`` records per response (2,000 by default, 200 to 2,000 through
``Sforce-Query-Options: batchSize=N``), and a ``nextRecordsUrl`` that is a path,
``/services/data/v59.0/query/01g…-2000`` (locator, dash, offset of the next record).

A locator keeps the query's result as it was when the query ran, as Salesforce's cursors do,
in this process for 15 minutes after its last use; as in Salesforce, a user has at most 10
open at once, and opening an eleventh releases that user's oldest (which also bounds the
memory they take). Each ``nextRecordsUrl`` works once, in order, as Salesforce documents
("use a queryLocator only once"): the answer to it hands out the next one, and asking for
any other offset of the locator (an earlier one again, a later one, one never handed out)
is 400 ``INVALID_QUERY_LOCATOR``. UserRecordAccess rows are computed for the ids the query
filters on.
"""

import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.http import HttpRequest

from integrations.sandbox.gateway import Call, SandboxError
from integrations.sandbox.models import SandboxRecord, SandboxUser
from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.org import Org, Row
from integrations.sandbox.salesforce.pushdown import prefilter
from integrations.sandbox.soql import evaluate
from integrations.sandbox.soql_ast import And, Comparison, Condition, InList, Op, SoqlError
from integrations.sandbox.soql_parser import parse
from integrations.sandbox.soql_schema import BoundQuery, validate

BATCH_DEFAULT = 2000
BATCH_MIN = 200
RECORD_ACCESS_MAX_IDS = 200
CURSOR_TTL_SECONDS = 15 * 60
CURSORS_PER_USER = 10
MAX_CURSORS = 1000
_BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_LOCATOR = re.compile(r"(01g[0-9A-Za-z]{15})(?:-(\d+))?")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Access levels from least to most, as UserRecordAccess.MaxAccessLevel names them.
_LEVELS = ("None", "Read", "Edit", "Delete", "Transfer", "All")


@dataclass
class _Cursor:
    account_id: int
    user_id: int
    version: str
    records: list[dict]
    total: int
    next_offset: int  # the offset of the one nextRecordsUrl that works now
    touched: float = field(default_factory=time.monotonic)


class _Cursors:
    """Open query locators of this process, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Cursor] = OrderedDict()

    def open(self, cursor: _Cursor) -> str:
        locator = "01g" + "".join(secrets.choice(_BASE62) for _ in range(15))
        with self._lock:
            self._expire()
            self._open[locator] = cursor
            mine = [
                key
                for key, other in self._open.items()
                if (other.account_id, other.user_id) == (cursor.account_id, cursor.user_id)
            ]
            for key in mine[:-CURSORS_PER_USER]:
                del self._open[key]
        return locator

    def advance(
        self, locator: str, offset: int, batch: int, account_id: int, user_id: int
    ) -> tuple[_Cursor, int] | None:
        """The cursor and the end of the batch ``locator-offset`` asks for, once: the next
        call must ask for that end. None when the locator is unknown, someone else's, or
        not at ``offset``. A cursor whose last batch was read is closed."""
        with self._lock:
            self._expire()
            cursor = self._open.get(locator)
            if (
                cursor is None
                or (cursor.account_id, cursor.user_id) != (account_id, user_id)
                or cursor.next_offset != offset
            ):
                return None
            end = min(offset + batch, len(cursor.records))
            cursor.next_offset = end
            cursor.touched = time.monotonic()
            if end >= len(cursor.records):
                del self._open[locator]
            else:
                self._open.move_to_end(locator)
            return cursor, end

    def _expire(self) -> None:
        deadline = time.monotonic() - CURSOR_TTL_SECONDS
        for locator in [k for k, c in self._open.items() if c.touched < deadline]:
            del self._open[locator]
        while len(self._open) > MAX_CURSORS:
            self._open.popitem(last=False)


CURSORS = _Cursors()


def batch_size(request: HttpRequest) -> int:
    """The batch size a ``Sforce-Query-Options`` header asks for, within Salesforce's range."""
    match = _BATCH_OPTION.search(request.headers.get("Sforce-Query-Options", ""))
    if match is None:
        return BATCH_DEFAULT
    return max(BATCH_MIN, min(BATCH_DEFAULT, int(match.group(1))))


def run(org: Org, call: Call, soql: str, *, include_deleted: bool, batch: int) -> dict:
    try:
        bound = validate(parse(soql), org.catalog())
    except SoqlError as error:
        raise SandboxError(400, error.message, error.error_code) from None
    root = bound.root.name
    if root == "UserRecordAccess":
        rows = _record_access_rows(org, bound)
    else:
        rows = _rows(org, bound, include_deleted=include_deleted)
    result = evaluate(bound, rows, resolve_parent=org.resolve_parent, attributes=org.attributes)
    call.object_name = root
    return _first_page(org, call, result.records, result.total_size, batch)


def more(org: Org, call: Call, locator_text: str, batch: int) -> dict:
    """The batch of an open query that its last ``nextRecordsUrl`` points at."""
    match = _LOCATOR.fullmatch(locator_text)
    advanced = (
        CURSORS.advance(
            match.group(1), int(match.group(2) or 0), batch, org.account.pk, org.user.pk
        )
        if match
        else None
    )
    if advanced is None:
        raise SandboxError(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
    cursor, end = advanced
    start = int(match.group(2) or 0)
    return _page(org, call, cursor.records[start:end], cursor.total, end, cursor, match.group(1))


def _first_page(org: Org, call: Call, records: list[dict], total: int, batch: int) -> dict:
    end = min(batch, len(records))
    if end >= len(records):
        return _page(org, call, records, total, end, None, None)
    cursor = _Cursor(org.account.pk, org.user.pk, org.version, records, total, next_offset=end)
    return _page(org, call, records[:end], total, end, cursor, CURSORS.open(cursor))


def _page(
    org: Org,
    call: Call,
    chunk: list[dict],
    total: int,
    end: int,
    cursor: _Cursor | None,
    locator: str | None,
) -> dict:
    done = cursor is None or end >= len(cursor.records)
    body: dict = {"totalSize": total, "done": done}
    if not done:
        body["nextRecordsUrl"] = f"/services/data/v{org.version}/query/{locator}-{end}"
    body["records"] = chunk
    if chunk:
        call.note_read(chunk[0]["attributes"]["type"], [r["Id"] for r in chunk if "Id" in r])
    return body


def _rows(org: Org, bound: BoundQuery, *, include_deleted: bool) -> list[Row]:
    root = bound.root.name
    narrowed = prefilter(root, bound.query.where, org.all_fields(root))
    return org.rows(root, include_deleted=include_deleted, narrowed=narrowed)


def _constraint(where: Condition | None, field_name: str) -> list[str] | None:
    """The literals of ``field = x`` or ``field IN (…)`` among the top-level AND terms."""
    terms = where.operands if isinstance(where, And) else (where,)
    for term in terms:
        if isinstance(term, Comparison) and term.op is Op.EQ and term.field.path == (field_name,):
            return [str(term.value)] if isinstance(term.value, str) else []
        if isinstance(term, InList) and not term.negated and term.field.path == (field_name,):
            return [str(value) for value in term.values if isinstance(value, str)]
    return None


def _record_access_rows(org: Org, bound: BoundQuery) -> list[Row]:
    user_ids = _constraint(bound.query.where, "UserId")
    record_ids = _constraint(bound.query.where, "RecordId")
    if user_ids is None or record_ids is None:
        raise SandboxError(
            400,
            "UserRecordAccess queries must filter on UserId and on RecordId",
            "MALFORMED_QUERY",
        )
    if len(set(record_ids)) > RECORD_ACCESS_MAX_IDS:
        raise SandboxError(
            400,
            f"UserRecordAccess queries can filter on at most {RECORD_ACCESS_MAX_IDS} RecordIds",
            "MALFORMED_QUERY",
        )
    users = [user for user in map(org.find_user, user_ids) if user is not None]
    records = [
        record
        for record_id in dict.fromkeys(record_ids)
        for record in [_any_record(org, record_id)]
        if record is not None
    ]
    return [
        _access_row(org, user, record, _access_level(org, user, record))
        for user in users
        for record in records
    ]


def _any_record(org: Org, record_id: str) -> SandboxRecord | None:
    prefixes = {prefix: name for name, prefix in _key_prefixes().items()}
    object_name = prefixes.get(record_id[:3])
    if object_name is None:
        return None
    record = org.find(object_name, record_id)
    return record if record is not None and record.deleted_at is None else None


def _key_prefixes() -> dict[str, str]:
    return {
        name: entry["keyPrefix"]
        for name in metadata.OBJECTS
        if (entry := metadata.global_entry(name))["keyPrefix"]
    }


def _access_level(org: Org, user: SandboxUser, record: SandboxRecord) -> str:
    if record.object_name == "OpportunityContactRole":
        parent = org.find("Opportunity", record.values.get("OpportunityId", ""))
        return _access_level(org, user, parent) if parent is not None else "None"
    if record.object_name not in metadata.SHARED_OBJECTS:
        return "Read"
    if record.owner_id == user.pk:
        return "All"
    if org.can_edit(record, user):
        return "Edit"
    return "Read" if org.can_access(record, user) else "None"


def _access_row(org: Org, user: SandboxUser, record: SandboxRecord, level: str) -> Row:
    rank = _LEVELS.index(level)
    values = {
        "Id": record.crm_id,
        "UserId": user.crm_user_id,
        "RecordId": record.crm_id,
        "HasReadAccess": rank >= _LEVELS.index("Read"),
        "HasEditAccess": rank >= _LEVELS.index("Edit"),
        "HasDeleteAccess": rank >= _LEVELS.index("Delete"),
        "HasTransferAccess": rank >= _LEVELS.index("Transfer"),
        "HasAllAccess": level == "All",
        "MaxAccessLevel": level,
    }
    return {name: values.get(name) for name in org.all_fields("UserRecordAccess")}
