"""The HubSpot adapter: the CrmClient protocol on hubspot-api-client (CRM v3/v4).

The client never retries (the caller decides, honouring ``RateLimited.retry_after``) and
every request has a timeout. Values are normalised to the conventions of types.py: HubSpot
answers numbers as decimals, dates and datetimes as ISO strings or epoch milliseconds, and
holds the close date as a datetime at midnight UTC, which is a calendar date to everyone
else. Every ApiException and transport failure becomes one of integrations/crm/errors.py,
keeping HubSpot's own message, status and category.

HubSpot has no conditional update (reference A8): ``update`` with a precondition re-reads
the fields with their history and refuses (Conflict) when a value differs from what the
agent read or changed after the read. That check and the write are two requests, so a
change landing between them is not caught; nothing in HubSpot's API can close that gap.
"""

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4 import exceptions as associations_exceptions
from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects import exceptions as objects_exceptions
from hubspot.crm.owners import exceptions as owners_exceptions
from hubspot.crm.pipelines import exceptions as pipelines_exceptions
from hubspot.crm.properties import exceptions as properties_exceptions

from integrations.crm import errors, search_parts
from integrations.crm.base import StageInfo
from integrations.crm.hubspot_mapping import (
    PROVIDER,
    as_decimal,
    normalise,
    owner_of,
    search_filter,
    spec_of,
    translate,
)
from integrations.crm.profiles import HUBSPOT, association_path
from integrations.crm.types import (
    BatchWriteResult,
    ObjectType,
    Owner,
    Page,
    Precondition,
    PropertySpec,
    PropertyType,
    Record,
    SearchQuery,
    WriteResult,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_SIZE = 100
HISTORY_BATCH_SIZE = 50
SEARCH_PAGE_MAX = 200
SEARCH_BODY_MAX = 3000  # characters; HubSpot refuses a longer search body (reference A2)
LONGEST_AFTER = "9" * 10  # search pages end at 10,000 results, so offsets are shorter
ASSOCIATIONS_PAGE = 500
ASSOCIATIONS_BATCH = 1000  # ids per v4 batch read
# A batch read's 207 error for ids with nothing associated: an empty answer, not a failure.
NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"
# ...and its message when no subCategory says so: "No deal is associated with company 7."
_NO_ASSOCIATIONS_TEXT = re.compile(r"\bno\b.+\bis associated with\b|\bno associations\b", re.I)
OWNERS_PAGE = 500

API_EXCEPTIONS = (
    objects_exceptions.ApiException,
    associations_exceptions.ApiException,
    properties_exceptions.ApiException,
    owners_exceptions.ApiException,
    pipelines_exceptions.ApiException,
)
# Each direction of an association has its own HubSpot-defined type id.
REVERSE_TYPE_IDS = {279: 280, 280: 279, 341: 342, 342: 341, 3: 4, 4: 3}
# Standard properties whose type matters for normalising values; anything else not listed
# is looked up once with describe.
STANDARD_TYPES: dict[str, PropertyType] = {
    "amount": PropertyType.NUMBER,
    "closedate": PropertyType.DATE,
    "createdate": PropertyType.DATETIME,
    "lastmodifieddate": PropertyType.DATETIME,
    "hs_lastmodifieddate": PropertyType.DATETIME,
    "hs_object_id": PropertyType.ID,
    "hubspot_owner_id": PropertyType.REFERENCE,
    "associatedcompanyid": PropertyType.REFERENCE,
    "email": PropertyType.EMAIL,
    "phone": PropertyType.PHONE,
    "dealstage": PropertyType.ENUMERATION,
    "pipeline": PropertyType.ENUMERATION,
    "industry": PropertyType.ENUMERATION,
    **dict.fromkeys(
        (
            "dealname",
            "hs_next_step",
            "firstname",
            "lastname",
            "jobtitle",
            "name",
            "domain",
        ),
        PropertyType.STRING,
    ),
    "description": PropertyType.TEXT,
}

T = TypeVar("T")


class HubSpotClient:
    """One HubSpot connection (private-app or OAuth access token)."""

    profile = HUBSPOT

    def __init__(
        self, access_token: str, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 30.0
    ) -> None:
        # ``retry=False`` hands transport errors over as they happen instead of urllib3's
        # default three silent retries; ``base_url`` also points the raw api_request helper
        # at the same host (reference A9).
        client = HubSpot(access_token=access_token, host=base_url, base_url=base_url, retry=False)
        crm = client.crm
        self._objects = crm.objects.basic_api
        self._batch = crm.objects.batch_api
        self._search = crm.objects.search_api
        self._associations = crm.associations.v4.basic_api
        self._association_batches = crm.associations.v4.batch_api
        self._properties = crm.properties.core_api
        self._owners = crm.owners.owners_api
        self._pipelines = crm.pipelines.pipelines_api
        self.timeout = timeout
        self._described: dict[ObjectType, dict[str, PropertySpec]] = {}

    # --- metadata ------------------------------------------------------------------------

    def describe(self, object_type: ObjectType) -> list[PropertySpec]:
        response = self._call(
            self._properties.get_all, self.profile.object_name(object_type), archived=False
        )
        specs = [spec_of(prop) for prop in response.results or []]
        self._described[object_type] = {spec.name: spec for spec in specs}
        return specs

    def owners(self) -> list[Owner]:
        owners: list[Owner] = []
        after = None
        while True:
            page = self._call(self._owners.get_page, limit=OWNERS_PAGE, after=after, archived=False)
            owners.extend(owner_of(item) for item in page.results or [])
            after = _next_after(page)
            if after is None:
                return owners

    def deal_stages(self) -> list[StageInfo]:
        response = self._call(self._pipelines.get_all, self.profile.object_name(ObjectType.DEAL))
        stages: dict[str, StageInfo] = {}
        for pipeline in response.results or []:
            for stage in pipeline.stages or []:
                metadata = stage.metadata or {}
                closed = str(metadata.get("isClosed", "")).lower() == "true"
                won = closed and as_decimal(metadata.get("probability")) == Decimal(1)
                stages.setdefault(stage.id, StageInfo(stage.id, stage.label, closed, won))
        return list(stages.values())

    # --- reads ---------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Page:
        """One request per page; a query whose body would pass HubSpot's 3,000 characters
        (hundreds of attendee emails) is split into as few requests as fit."""
        parts = search_parts.split(replace(query, cursor=None), self._fits_one_request)
        return search_parts.search(parts, query.cursor, self._search_page)

    def _search_page(self, query: SearchQuery) -> Page:
        response = self._call(
            self._search.do_search,
            self.profile.object_name(query.object_type),
            self._search_request(query),
        )
        records = tuple(
            self._record(query.object_type, obj, query.properties) for obj in response.results or []
        )
        return Page(records=records, total=response.total or 0, next_cursor=_next_after(response))

    def _search_request(self, query: SearchQuery) -> PublicObjectSearchRequest:
        return PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[search_filter(item) for item in group])
                for group in query.filter_groups
            ],
            sorts=[
                {
                    "propertyName": sort.property,
                    "direction": "DESCENDING" if sort.descending else "ASCENDING",
                }
                for sort in query.sorts
            ],
            properties=list(query.properties) or None,
            limit=min(query.limit, SEARCH_PAGE_MAX),
            after=query.cursor,
        )

    def _fits_one_request(self, query: SearchQuery) -> bool:
        # Measured as the SDK sends it (its own serialisation, then json.dumps), with room
        # for the ``after`` of any later page: the parts must not change from page to page.
        request = self._search_request(replace(query, cursor=LONGEST_AFTER))
        body = self._search.api_client.sanitize_for_serialization(request)
        return len(json.dumps(body)) <= SEARCH_BODY_MAX

    def get(self, object_type: ObjectType, record_id: str, properties: Sequence[str]) -> Record:
        names = list(dict.fromkeys(properties))
        obj = self._call(
            self._objects.get_by_id,
            self.profile.object_name(object_type),
            record_id,
            properties=names or None,
            properties_with_history=names or None,
            archived=False,
        )
        return self._record(object_type, obj, names)

    def get_many(
        self, object_type: ObjectType, record_ids: Sequence[str], properties: Sequence[str]
    ) -> list[Record]:
        names = list(dict.fromkeys(properties))
        ids = list(dict.fromkeys(record_ids))
        found: dict[str, Record] = {}
        for chunk in _chunks(ids, HISTORY_BATCH_SIZE if names else BATCH_SIZE):
            request = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=record_id) for record_id in chunk],
                properties=names,
                properties_with_history=names or None,
            )
            response = self._call(
                self._batch.read, self.profile.object_name(object_type), request, archived=False
            )
            for obj in response.results or []:
                found[obj.id] = self._record(object_type, obj, names)
        return [found[record_id] for record_id in ids if record_id in found]

    def associated_ids(
        self, object_type: ObjectType, record_id: str, to_type: ObjectType
    ) -> list[str]:
        ids: list[str] = []
        after = None
        while True:
            page = self._call(
                self._associations.get_page,
                self.profile.object_name(object_type),
                record_id,
                self.profile.object_name(to_type),
                after=after,
                limit=ASSOCIATIONS_PAGE,
            )
            ids.extend(str(item.to_object_id) for item in page.results or [])
            after = _next_after(page)
            if after is None:
                return list(dict.fromkeys(ids))

    def associations_many(
        self, object_type: ObjectType, record_ids: Sequence[str], to_type: ObjectType
    ) -> dict[str, list[str]]:
        """One v4 batch read per 1,000 ids; an id whose associations run past one page is
        asked again with its ``after``, together with the others that do."""
        ids = list(dict.fromkeys(record_ids))
        found: dict[str, list[str]] = {record_id: [] for record_id in ids}
        source, target = self.profile.object_name(object_type), self.profile.object_name(to_type)
        pending: list[tuple[str, str | None]] = [(record_id, None) for record_id in ids]
        while pending:
            following: list[tuple[str, str | None]] = []
            for chunk in _chunks(pending, ASSOCIATIONS_BATCH):
                request = BatchInputPublicFetchAssociationsBatchRequest(
                    inputs=[
                        PublicFetchAssociationsBatchRequest(id=record_id, after=after)
                        for record_id, after in chunk
                    ]
                )
                response = self._call(
                    self._association_batches.get_page,
                    source,
                    target,
                    batch_input_public_fetch_associations_batch_request=request,
                )
                _refuse_batch_errors(response)
                for result in response.results or []:
                    from_id = str(result._from.id)
                    if from_id not in found:
                        continue
                    found[from_id].extend(str(item.to_object_id) for item in result.to or [])
                    if (after := _next_after(result)) is not None:
                        following.append((from_id, after))
            pending = following
        return {record_id: list(dict.fromkeys(targets)) for record_id, targets in found.items()}

    # --- writes --------------------------------------------------------------------------

    def update(
        self,
        object_type: ObjectType,
        record_id: str,
        properties: Mapping[str, str | None],
        *,
        precondition: Precondition | None = None,
    ) -> WriteResult:
        if precondition is not None:
            self._check_unchanged(object_type, record_id, properties, precondition)
        obj = self._call(
            self._objects.update,
            self.profile.object_name(object_type),
            record_id,
            SimplePublicObjectInput(properties=_payload(properties)),
        )
        return self._result(object_type, obj, properties)

    def update_many(
        self, object_type: ObjectType, updates: Mapping[str, Mapping[str, str | None]]
    ) -> BatchWriteResult:
        """Batch update, 100 records per request. Records HubSpot did not write (its 207
        answer) are in ``failed`` with HubSpot's own message; the others are written."""
        results: list[WriteResult] = []
        failed: dict[str, errors.CrmError] = {}
        for chunk in _chunks(list(updates.items()), BATCH_SIZE):
            request = BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=record_id, properties=_payload(values))
                    for record_id, values in chunk
                ]
            )
            response = self._call(
                self._batch.update, self.profile.object_name(object_type), request
            )
            written = set()
            for obj in response.results or []:
                results.append(self._result(object_type, obj, updates.get(obj.id, {})))
                written.add(str(obj.id))
            for error in getattr(response, "errors", None) or []:
                context = error.context or {}
                refusal = (
                    errors.NotFound(
                        error.message, provider="hubspot", status=404, code=error.category
                    )
                    if error.category == "OBJECT_NOT_FOUND"
                    else errors.ValidationFailed(
                        error.message, provider="hubspot", status=400, code=error.category
                    )
                )
                for record_id in context.get("ids") or []:
                    failed[str(record_id)] = refusal
            for record_id, _ in chunk:
                if record_id not in written and record_id not in failed:
                    failed[record_id] = errors.CrmError(
                        "HubSpot neither wrote this record nor said why", provider="hubspot"
                    )
        if failed:
            logger.warning("HubSpot batch update did not write %d %s", len(failed), object_type)
        return BatchWriteResult(tuple(results), failed)

    def create(
        self,
        object_type: ObjectType,
        properties: Mapping[str, str | None],
        *,
        associations: Mapping[ObjectType, Sequence[str]] | None = None,
    ) -> WriteResult:
        links = [
            PublicAssociationsForObject(
                to=PublicObjectId(id=target_id),
                types=[
                    AssociationSpec(
                        association_category="HUBSPOT_DEFINED",
                        association_type_id=_association_type_id(object_type, to_type),
                    )
                ],
            )
            for to_type, target_ids in (associations or {}).items()
            for target_id in target_ids
        ]
        payload = {name: value for name, value in properties.items() if value is not None}
        obj = self._call(
            self._objects.create,
            self.profile.object_name(object_type),
            SimplePublicObjectInputForCreate(properties=payload, associations=links),
        )
        return self._result(object_type, obj, properties, created=True)

    # --- internals -----------------------------------------------------------------------

    def _check_unchanged(
        self,
        object_type: ObjectType,
        record_id: str,
        properties: Mapping[str, str | None],
        precondition: Precondition,
    ) -> None:
        names = list(dict.fromkeys([*precondition.expected, *properties]))
        current = self.get(object_type, record_id, names)
        differs = [
            name
            for name, expected in precondition.expected.items()
            if current.properties.get(name) != self._normalise(object_type, name, expected)
        ]
        since = precondition.unmodified_since
        newer = [
            name
            for name in names
            if (changed := current.modified_at.get(name)) is not None and changed > since
        ]
        if differs or newer:
            fields = ", ".join(dict.fromkeys([*differs, *newer]))
            raise errors.Conflict(
                f"{object_type} {record_id} changed since it was read ({fields})",
                provider=PROVIDER,
                code="PRECONDITION_FAILED",
            )

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, _request_timeout=self.timeout, **kwargs)
        except API_EXCEPTIONS as exc:
            raise translate(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.Transient(
                f"HubSpot request failed: {exc}", provider=PROVIDER, code=type(exc).__name__
            ) from exc

    def _types(self, object_type: ObjectType) -> dict[str, PropertySpec]:
        if object_type not in self._described:
            self.describe(object_type)
        return self._described[object_type]

    def _kind(self, object_type: ObjectType, name: str) -> PropertyType:
        if name in STANDARD_TYPES:
            return STANDARD_TYPES[name]
        spec = self._types(object_type).get(name)
        return spec.type if spec else PropertyType.STRING

    def _normalise(self, object_type: ObjectType, name: str, value: object) -> str | None:
        if value is None or value == "":
            return None
        return normalise(self._kind(object_type, name), str(value))

    def _record(self, object_type: ObjectType, obj: Any, names: Sequence[str]) -> Record:
        raw = obj.properties or {}
        shown = names or list(raw)
        values = {name: self._normalise(object_type, name, raw.get(name)) for name in shown}
        modified_at = {
            name: max((entry.timestamp for entry in entries), default=None)
            for name, entries in (getattr(obj, "properties_with_history", None) or {}).items()
        }
        return Record(
            object_type=object_type,
            id=obj.id,
            properties=values,
            modified_at={name: modified_at.get(name) for name in names} if names else modified_at,
            updated_at=obj.updated_at,
            owner_id=raw.get("hubspot_owner_id") or None,
        )

    def _result(
        self,
        object_type: ObjectType,
        obj: Any,
        written: Mapping[str, str | None],
        *,
        created: bool = False,
    ) -> WriteResult:
        raw = obj.properties or {}
        return WriteResult(
            object_type=object_type,
            id=obj.id,
            properties={
                name: self._normalise(object_type, name, raw.get(name)) for name in written
            },
            created=created,
            updated_at=obj.updated_at,
        )


def _payload(properties: Mapping[str, str | None]) -> dict[str, str]:
    # HubSpot clears a value written as an empty string.
    return {name: "" if value is None else str(value) for name, value in properties.items()}


def _association_type_id(source: ObjectType, target: ObjectType) -> int:
    path, reverse = association_path(source, target)
    type_id = path.hubspot_type_id
    if type_id is None:
        raise ValueError(f"no HubSpot association type between {source} and {target}")
    return REVERSE_TYPE_IDS[type_id] if reverse else type_id


def _refuse_batch_errors(response: Any) -> None:
    """Raise the first error of a 207 other than "nothing associated": the answer would
    otherwise read as ids without associations."""
    for error in getattr(response, "errors", None) or []:
        if _says_no_associations(error):
            continue
        raise errors.CrmError(error.message, provider=PROVIDER, status=207, code=error.category)


def _says_no_associations(error: Any) -> bool:
    """Whether a batch error only says that a record has nothing associated.

    HubSpot answers ``subCategory: "crm.associations.NO_ASSOCIATIONS_FOUND"``, but its own
    spec types ``subCategory`` as an object, so it may come as ``{"name": ...}`` (the SDK
    hands such an object over as a dict), with or without the ``crm.associations.`` prefix.
    Without a subCategory the category or the message must say it. Any other subCategory
    is a real error."""
    sub = getattr(error, "sub_category", None)
    if isinstance(sub, Mapping):
        names = [value for value in sub.values() if isinstance(value, str)]
    elif sub is not None and sub != "":
        names = [str(getattr(sub, "name", sub))]
    else:
        names = []
    if names:
        return any(_is_no_associations(name) for name in names)
    category = str(getattr(error, "category", None) or "")
    message = str(getattr(error, "message", None) or "")
    return _is_no_associations(category) or bool(_NO_ASSOCIATIONS_TEXT.search(message))


def _is_no_associations(name: str) -> bool:
    return name.strip().rpartition(".")[2].upper() == NO_ASSOCIATIONS.rpartition(".")[2]


def _next_after(response: Any) -> str | None:
    paging = getattr(response, "paging", None)
    following = getattr(paging, "next", None) if paging else None
    after = getattr(following, "after", None) if following else None
    return str(after) if after else None


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
