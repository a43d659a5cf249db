"""The Salesforce adapter: the CrmClient protocol on simple-salesforce (REST API v59.0).

The connection is "direct" (an access token or session id and the instance URL). Every
request has a timeout, none is retried (the caller decides, honouring
``RateLimited.retry_after``), and every simple-salesforce exception or transport failure
becomes one of integrations/crm/errors.py with Salesforce's own message, status and
errorCode (salesforce_errors.translate).

simple-salesforce rebuilds every URL as ``https://{host:port}/…`` from the instance URL,
whatever its scheme (reference B5, C2). For an ``http://`` instance (the local sandbox) the
session therefore gets a transport adapter that sends those URLs over plain HTTP.

Salesforce enforces the token user's sharing and field-level security itself: records the
user may not see do not exist for it (404 / absent from queries), hidden fields are not
in its describe. Reads ask only for what they need and learn types from the JSON; writes
and filters convert values by the object's describe, fetched once per client and object.

Paging: see salesforce_soql.Position.
"""

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from integrations.crm import errors, search_parts
from integrations.crm.base import StageInfo
from integrations.crm.profiles import SALESFORCE, association_path
from integrations.crm.salesforce_errors import from_errors, translate
from integrations.crm.salesforce_links import plan
from integrations.crm.salesforce_session import session_for
from integrations.crm.salesforce_soql import Position, order_by, quote, select, where
from integrations.crm.salesforce_values import (
    COMPOUND_TYPES,
    PROVIDER,
    normalise,
    parse_moment,
    spec,
    to_salesforce,
)
from integrations.crm.types import (
    BatchWriteResult,
    ObjectType,
    Owner,
    Page,
    Precondition,
    PropertySpec,
    Record,
    SearchQuery,
    WriteResult,
)

logger = logging.getLogger(__name__)

API_VERSION = "59.0"
BATCH_MIN, BATCH_MAX = 200, 2000
COLLECTION_SIZE = 200  # sObject Collections take at most 200 records
IDS_PER_QUERY = 200  # keeps ``Id IN (…)`` queries well inside URL limits
# A query travels in the URI, and Salesforce refuses more than 16,384 bytes of URI and
# headers together (414 / 431); this leaves room for the path and the headers.
QUERY_URI_MAX = 12_000
LONGEST_OFFSET = 2000  # Salesforce's own OFFSET limit
# What every read selects besides the properties asked for.
SYSTEM_FIELDS = ("Id", "LastModifiedDate", "OwnerId")
DEFAULT_PROPERTIES = ("Name",)
_RECORD_ID = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
# A record read less than this after the start of the second it last changed in may still
# change within that second without its LastModifiedDate moving (one second, plus one for
# the difference between our clock and Salesforce's).
SAME_SECOND_MARGIN = timedelta(seconds=2)

T = TypeVar("T")


def _checked_id(record_id: str) -> str:
    """Refuse anything but a Salesforce id before it reaches a URL: simple-salesforce joins
    ids onto paths, so ``../query?q=…`` would name another resource."""
    if not _RECORD_ID.fullmatch(record_id):
        raise errors.NotFound(
            f"{record_id!r} is not a Salesforce record id", provider=PROVIDER, code="MALFORMED_ID"
        )
    return record_id


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SalesforceClient:
    """One Salesforce connection, acting as the user the access token belongs to."""

    profile = SALESFORCE

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str,
        timeout: float = 30.0,
        version: str = API_VERSION,
        session: requests.Session | None = None,
    ) -> None:
        self._sf = Salesforce(
            instance_url=base_url,
            session_id=access_token,
            version=version,
            session=session_for(base_url, timeout=timeout, session=session),
        )
        self._described: dict[ObjectType, dict[str, dict]] = {}

    # --- metadata ------------------------------------------------------------------------

    def describe(self, object_type: ObjectType) -> list[PropertySpec]:
        fields = self._fields(object_type)
        return [spec(field) for field in fields.values() if field["type"] not in COMPOUND_TYPES]

    def owners(self) -> list[Owner]:
        rows = self._query_all(
            "SELECT Id, Email, FirstName, LastName, Department FROM User "
            "WHERE IsActive = true ORDER BY Id"
        )
        return [
            Owner(
                id=row["Id"],
                email=row.get("Email") or "",
                first_name=row.get("FirstName") or "",
                last_name=row.get("LastName") or "",
                user_id=row["Id"],
                teams=(row["Department"],) if row.get("Department") else (),
            )
            for row in rows
        ]

    def deal_stages(self) -> list[StageInfo]:
        rows = self._query_all(
            "SELECT ApiName, MasterLabel, IsClosed, IsWon FROM OpportunityStage "
            "WHERE IsActive = true ORDER BY SortOrder"
        )
        return [
            StageInfo(row["ApiName"], row["MasterLabel"], bool(row["IsClosed"]), bool(row["IsWon"]))
            for row in rows
        ]

    # --- reads ---------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Page:
        """One request per page; a query too long for one URI (hundreds of attendee
        emails) is split into as few requests as fit."""
        parts = search_parts.split(replace(query, cursor=None), self._fits_one_request)
        return search_parts.search(parts, query.cursor, self._search_page)

    def _fits_one_request(self, query: SearchQuery) -> bool:
        # The query travels in the URI; a later page adds LIMIT and OFFSET to it.
        names = list(query.properties) or list(DEFAULT_PROPERTIES)
        field_of = partial(self._field, query.object_type)
        soql = self._select(query.object_type, names) + where(query, field_of) + order_by(query)
        soql += f" LIMIT {BATCH_MAX} OFFSET {LONGEST_OFFSET}"
        return len(urlencode({"q": soql})) <= QUERY_URI_MAX

    def _search_page(self, query: SearchQuery) -> Page:
        object_type = query.object_type
        names = list(dict.fromkeys(query.properties)) or list(DEFAULT_PROPERTIES)
        limit = max(1, min(query.limit, BATCH_MAX))
        headers = {"Sforce-Query-Options": f"batchSize={max(BATCH_MIN, limit)}"}

        def run(wanted: list[str], clause: str = "") -> dict:
            field_of = partial(self._field, object_type)
            soql = self._select(object_type, wanted) + where(query, field_of) + order_by(query)
            return self._call(self._sf.query, soql + clause, headers=headers)

        position = Position.of(query.cursor)
        if position.offset_total is not None:
            clause = f" LIMIT {limit} OFFSET {position.start}"
            result = self._readable(object_type, names, partial(run, clause=clause))
        elif position.locator:
            result = self._call(
                self._sf.query_more, query.cursor, identifier_is_url=True, headers=headers
            )
        else:
            result = self._readable(object_type, names, run)
        rows = result["records"][:limit]
        total = position.offset_total or result["totalSize"]
        return Page(
            self._records(object_type, rows, names), total, position.next(result, limit, total)
        )

    def get(self, object_type: ObjectType, record_id: str, properties: Sequence[str]) -> Record:
        names = list(dict.fromkeys(properties))
        sobject = getattr(self._sf, self.profile.object_name(object_type))
        record_id = _checked_id(record_id)

        def fetch(wanted: list[str]) -> dict:
            fields = ",".join(dict.fromkeys([*wanted, *SYSTEM_FIELDS]))
            return self._call(sobject.get, record_id, params={"fields": fields})

        return self._record(object_type, self._readable(object_type, names, fetch), names)

    def get_many(
        self, object_type: ObjectType, record_ids: Sequence[str], properties: Sequence[str]
    ) -> list[Record]:
        names = list(dict.fromkeys(properties))
        ids = [_checked_id(record_id) for record_id in dict.fromkeys(record_ids)]
        found: dict[str, Record] = {}
        for chunk in _chunks(ids, IDS_PER_QUERY):
            in_chunk = f" WHERE Id IN ({', '.join(quote(record_id) for record_id in chunk)})"
            rows = self._readable(
                object_type,
                names,
                lambda wanted, in_chunk=in_chunk: self._query_all(
                    self._select(object_type, wanted) + in_chunk
                ),
            )
            for row in rows:
                found[row["Id"]] = self._record(object_type, row, names)
        # Salesforce answers a 15-character id with its 18-character form.
        by_prefix = {record_id[:15]: record for record_id, record in found.items()}
        return [by_prefix[record_id[:15]] for record_id in ids if record_id[:15] in by_prefix]

    def associated_ids(
        self, object_type: ObjectType, record_id: str, to_type: ObjectType
    ) -> list[str]:
        sobject, key, column = self._association_columns(object_type, to_type)
        target = quote(_checked_id(record_id))
        soql = f"SELECT {column} FROM {sobject} WHERE {key} = {target}"
        rows = self._query_all(soql + " ORDER BY Id")
        return list(dict.fromkeys(row[column] for row in rows if row.get(column)))

    def associations_many(
        self, object_type: ObjectType, record_ids: Sequence[str], to_type: ObjectType
    ) -> dict[str, list[str]]:
        """One query per chunk of ids. Ids are matched on their first 15 characters, as in
        ``get_many``: Salesforce answers a 15-character id with its 18-character form."""
        ids = [_checked_id(record_id) for record_id in dict.fromkeys(record_ids)]
        sobject, key, column = self._association_columns(object_type, to_type)
        found: dict[str, list[str]] = {}
        for chunk in _chunks(ids, IDS_PER_QUERY):
            listed = ", ".join(quote(record_id) for record_id in chunk)
            soql = f"SELECT {key}, {column} FROM {sobject} WHERE {key} IN ({listed}) ORDER BY Id"
            for row in self._query_all(soql):
                if row.get(key) and row.get(column):
                    found.setdefault(row[key][:15], []).append(row[column])
        return {record_id: list(dict.fromkeys(found.get(record_id[:15], []))) for record_id in ids}

    def _association_columns(
        self, object_type: ObjectType, to_type: ObjectType
    ) -> tuple[str, str, str]:
        """Where the link lives: the object to query, the column holding the ids asked
        about, and the column holding the associated ids."""
        path, reverse = association_path(object_type, to_type)
        if path.salesforce_lookup:
            lookup = path.salesforce_lookup
            if reverse:  # the lookup is on the records asked for: Contact.AccountId = this
                return self.profile.object_name(to_type), lookup, "Id"
            return self.profile.object_name(object_type), "Id", lookup
        assert path.salesforce_junction is not None
        sobject, source_field, target_field = path.salesforce_junction
        if reverse:
            return sobject, target_field, source_field
        return sobject, source_field, target_field

    # --- writes --------------------------------------------------------------------------

    def update(
        self,
        object_type: ObjectType,
        record_id: str,
        properties: Mapping[str, str | None],
        *,
        precondition: Precondition | None = None,
    ) -> WriteResult:
        record_id = _checked_id(record_id)
        data = self._typed(object_type, properties)
        sobject = getattr(self._sf, self.profile.object_name(object_type))
        if precondition is None:
            self._call(sobject.update, record_id, data)
        else:
            self._update_unless_modified(object_type, sobject, record_id, data, precondition)
        return WriteResult(object_type, record_id, dict(properties))

    def _update_unless_modified(
        self,
        object_type: ObjectType,
        sobject: Any,
        record_id: str,
        data: dict,
        precondition: Precondition,
    ) -> None:
        """One PATCH with If-Unmodified-Since, which Salesforce answers 412 when the record's
        LastModifiedDate is later. Both have whole seconds, so Salesforce cannot see a change
        made later in the second the record last changed in. That only matters when the
        agent read the record in that same second; ``_record`` then reports ``updated_at``
        at the end of the second, and such a ``since`` (not a whole second) makes this read
        the record's values first and refuse if they are not what the agent read. A change
        landing between that read and the PATCH, in the same second, is still not caught.
        """
        since = precondition.unmodified_since.astimezone(UTC)
        second = since.replace(microsecond=0)
        if since != second:
            self._check_unchanged(object_type, sobject, record_id, second, precondition.expected)
        self._call(sobject.update, record_id, data, headers=_unmodified_since(second))

    def _check_unchanged(
        self,
        object_type: ObjectType,
        sobject: Any,
        record_id: str,
        second: datetime,
        expected: Mapping[str, str | None],
    ) -> None:
        names = list(expected)

        def fetch(wanted: list[str]) -> dict:
            fields = ",".join(dict.fromkeys([*wanted, "LastModifiedDate"]))
            return self._call(sobject.get, record_id, params={"fields": fields})

        raw = self._readable(object_type, names, fetch)
        current = self._record(object_type, raw, names)
        changed = parse_moment(raw.get("LastModifiedDate") or "")
        differs = [name for name in names if current.properties.get(name) != expected[name]]
        if changed is None or changed > second or differs:
            fields = f" ({', '.join(differs)})" if differs else ""
            raise errors.Conflict(
                f"{sobject.name} {record_id} changed since it was read{fields}",
                provider=PROVIDER,
                code="PRECONDITION_FAILED",
            )

    def update_many(
        self, object_type: ObjectType, updates: Mapping[str, Mapping[str, str | None]]
    ) -> BatchWriteResult:
        """Collections of 200 records per request. Records Salesforce refused are in
        ``failed`` with the mapped error; the others are written."""
        object_name = self.profile.object_name(object_type)
        items = list(updates.items())
        results: list[WriteResult] = []
        failed: dict[str, errors.CrmError] = {}
        for chunk in _chunks(items, COLLECTION_SIZE):
            records = [
                {
                    "attributes": {"type": object_name},
                    "id": record_id,
                    **self._typed(object_type, values),
                }
                for record_id, values in chunk
            ]
            saved = self._call(
                self._sf.restful,
                "composite/sobjects",
                method="PATCH",
                json={"allOrNone": False, "records": records},
            )
            for (record_id, values), result in zip(chunk, saved or [], strict=True):
                if result.get("success"):
                    results.append(WriteResult(object_type, record_id, dict(values)))
                    continue
                error = from_errors(None, result.get("errors") or [], result, "update refused")
                failed[record_id] = error
                logger.warning(
                    "Salesforce refused to update %s %s: %s (%s)",
                    object_name,
                    record_id,
                    error.message,
                    type(error).__name__,
                )
        return BatchWriteResult(tuple(results), failed)

    def create(
        self,
        object_type: ObjectType,
        properties: Mapping[str, str | None],
        *,
        associations: Mapping[ObjectType, Sequence[str]] | None = None,
    ) -> WriteResult:
        """Create, then link: a link that needs another write (a junction record, a lookup
        on the other record) is made after the create; if Salesforce refuses it, the error
        is raised and the record stays created."""
        links = plan(object_type, associations or {})
        data = {k: v for k, v in self._typed(object_type, properties).items() if v is not None}
        sobject = getattr(self._sf, self.profile.object_name(object_type))
        record_id = self._call(sobject.create, {**data, **links.own_lookups})["id"]
        inserts, updates = links.writes(object_type, record_id)
        for method, records in (("POST", inserts), ("PATCH", updates)):
            for chunk in _chunks(records, COLLECTION_SIZE):
                saved = self._call(
                    self._sf.restful,
                    "composite/sobjects",
                    method=method,
                    json={"allOrNone": True, "records": chunk},
                )
                failed = [e for result in saved or [] for e in result.get("errors") or []]
                # Under allOrNone the innocent records only say they were rolled back.
                failed.sort(
                    key=lambda e: e.get("statusCode") == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
                )
                if failed:
                    raise from_errors(None, failed, saved, "association refused")
        return WriteResult(object_type, record_id, dict(properties), created=True)

    # --- internals -----------------------------------------------------------------------

    def _call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SalesforceError as exc:
            raise translate(exc) from exc
        except (requests.RequestException, OSError) as exc:
            raise errors.Transient(
                f"Salesforce request failed: {exc}", provider=PROVIDER, code=type(exc).__name__
            ) from exc

    def _query_all(self, soql: str) -> list[dict]:
        result = self._call(self._sf.query, soql)
        rows = list(result["records"])
        while not result["done"]:
            result = self._call(
                self._sf.query_more, result["nextRecordsUrl"], identifier_is_url=True
            )
            rows.extend(result["records"])
        return rows

    def _fields(self, object_type: ObjectType) -> dict[str, dict]:
        if object_type not in self._described:
            sobject = getattr(self._sf, self.profile.object_name(object_type))
            body = self._call(sobject.describe)
            self._described[object_type] = {field["name"]: field for field in body["fields"]}
        return self._described[object_type]

    def _field(self, object_type: ObjectType, name: str) -> dict | None:
        fields = self._fields(object_type)
        if name in fields:
            return fields[name]
        lowered = name.lower()
        return next((f for n, f in fields.items() if n.lower() == lowered), None)

    def _readable(
        self, object_type: ObjectType, names: list[str], read: Callable[[list[str]], T]
    ) -> T:
        """``read(names)``; if Salesforce refuses a name the user cannot see (hidden by
        field-level security, or no such field), read again without it. HubSpot leaves
        unknown properties out of its answers, and so does this adapter (they read None)."""
        try:
            return read(names)
        except errors.ValidationFailed:
            visible = [name for name in names if self._field(object_type, name) is not None]
            if visible == names:
                raise
            return read(visible)

    def _typed(self, object_type: ObjectType, properties: Mapping[str, str | None]) -> dict:
        return {
            name: to_salesforce(self._field(object_type, name), name, value)
            for name, value in properties.items()
        }

    def _select(self, object_type: ObjectType, names: Sequence[str]) -> str:
        return select(self.profile.object_name(object_type), [*SYSTEM_FIELDS, *names])

    def _records(self, object_type: ObjectType, rows: list[dict], names: list[str]) -> tuple:
        return tuple(self._record(object_type, row, names) for row in rows)

    def _record(self, object_type: ObjectType, raw: Mapping[str, Any], names: list[str]) -> Record:
        lowered = {key.lower(): key for key in raw if key != "attributes"}
        changed = _last_changed(parse_moment(raw.get("LastModifiedDate") or ""))
        values = {name: normalise(raw.get(lowered.get(name.lower(), name))) for name in names}
        return Record(
            object_type=object_type,
            id=raw["Id"],
            properties=values,
            # Salesforce tells when the record last changed, not each field.
            modified_at=dict.fromkeys(names, changed),
            updated_at=changed,
            owner_id=raw.get("OwnerId"),
        )


def _last_changed(modified: datetime | None, now: datetime | None = None) -> datetime | None:
    """When the record last changed, as far as a later write can rely on it.

    LastModifiedDate has whole seconds. When the record was read in (or within a second of,
    allowing for clock skew) the second it last changed in, it may change again within that
    second and keep its LastModifiedDate: the record is then reported as changed at the end
    of that second, which ``update`` takes as "check the values, not only the date"."""
    if modified is None or modified.microsecond:
        return modified
    now = now or datetime.now(UTC)
    if now < modified + SAME_SECOND_MARGIN:
        return modified + timedelta(microseconds=999_999)
    return modified


def _unmodified_since(moment: datetime) -> dict[str, str]:
    return {"If-Unmodified-Since": format_datetime(moment.astimezone(UTC), usegmt=True)}
