"""What the HubSpot sandbox endpoints share: object types, query parameters, errors, and
the rendering of a record as HubSpot's SimplePublicObject."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from urllib.parse import urlencode

from django.db.models import BigIntegerField, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest

from integrations.sandbox import property_cache, store
from integrations.sandbox.gateway import Call, SandboxError
from integrations.sandbox.hubspot import schema
from integrations.sandbox.hubspot.values import format_datetime, format_number
from integrations.sandbox.models import (
    SandboxAccount,
    SandboxAssociation,
    SandboxProperty,
    SandboxPropertyChange,
    SandboxRecord,
    SandboxUser,
)
from integrations.sandbox.record_cache import CachedRecord

PROVIDER = "hubspot"
OBJECT_NAMES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
LONG_DIGITS = 18  # every offset of this many digits fits Java's long
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
DEFAULT_PROPERTIES = {
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
}


@dataclass(frozen=True)
class AssociationType:
    type_id: int
    source: str
    target: str
    name: str  # the v3 ``type`` string
    label: str | None  # the v4 label; None for the unlabelled default
    reverse: int


def _types(*rows: tuple[int, str, str, str, str | None, int]) -> dict[int, AssociationType]:
    return {row[0]: AssociationType(*row) for row in rows}


# HubSpot-defined association types between the three objects (hubspot/crm/association_type.py).
ASSOCIATION_TYPES = _types(
    (1, "contacts", "companies", "contact_to_company", "Primary", 2),
    (2, "companies", "contacts", "company_to_contact", "Primary", 1),
    (279, "contacts", "companies", "contact_to_company_unlabeled", None, 280),
    (280, "companies", "contacts", "company_to_contact_unlabeled", None, 279),
    (3, "deals", "contacts", "deal_to_contact", None, 4),
    (4, "contacts", "deals", "contact_to_deal", None, 3),
    (5, "deals", "companies", "deal_to_company", "Primary", 6),
    (6, "companies", "deals", "company_to_deal", "Primary", 5),
    (341, "deals", "companies", "deal_to_company_unlabeled", None, 342),
    (342, "companies", "deals", "company_to_deal_unlabeled", None, 341),
    (13, "companies", "companies", "parent_to_child_company", "Child Company", 14),
    (14, "companies", "companies", "child_to_parent_company", "Parent Company", 13),
    (449, "contacts", "contacts", "contact_to_contact", None, 449),
    (450, "companies", "companies", "company_to_company", None, 450),
    (451, "deals", "deals", "deal_to_deal", None, 451),
)
PRIMARY_COMPANY_TYPE = 1  # contact -> company, labelled "Primary"
# Properties HubSpot keeps from a record's associations (read-only), per object.
LINKED = {"contacts": frozenset({"associatedcompanyid"})}
# The unlabelled type HubSpot uses between two objects (and adds next to any labelled one).
DEFAULT_TYPES = {
    (kind.source, kind.target): kind.type_id
    for kind in ASSOCIATION_TYPES.values()
    if kind.label is None
}


def object_name_of(value: str) -> str:
    try:
        return OBJECT_NAMES[value.lower()]
    except KeyError:
        raise SandboxError(
            400, f"Unable to infer object type from: {value}", "VALIDATION_ERROR"
        ) from None


def query_list(request: HttpRequest, key: str) -> list[str]:
    """An array parameter sent as repeated keys, comma lists, or a mixture of both."""
    items: list[str] = []
    for raw in request.GET.getlist(key):
        items.extend(part.strip() for part in raw.split(","))
    return list(dict.fromkeys(item for item in items if item))


def query_flag(request: HttpRequest, key: str) -> bool:
    return request.GET.get(key, "false").strip().lower() == "true"


def query_int(request: HttpRequest, key: str, default: int, maximum: int) -> int:
    raw = request.GET.get(key)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise SandboxError(400, f"Unable to parse {key} value: {raw}", "VALIDATION_ERROR") from None
    if number < 1 or number > maximum:
        raise SandboxError(
            400, f"{key} must be between 1 and {maximum}, got {number}", "VALIDATION_ERROR"
        )
    return number


def offset(raw: str | None, key: str = "after") -> int:
    """A paging offset (``after``) as HubSpot reads it: ASCII digits only, at most a long.
    ``str.isdigit`` alone would pass "²", which ``int`` then refuses."""
    text = (raw or "").strip() or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > LONG_DIGITS:
        raise SandboxError(400, f"Unable to parse {key} value: {text}", "VALIDATION_ERROR")
    return int(text)


def next_page(request: HttpRequest, after: str) -> dict:
    """``paging`` pointing at the next page; the link repeats the query with the new
    ``after``, relative as in HubSpot's spec examples."""
    query = request.GET.copy()
    query["after"] = after
    return {"next": {"after": after, "link": f"?{urlencode(query, doseq=True)}"}}


def not_found() -> SandboxError:
    # HubSpot's 404 for an unknown numeric id carries no category.
    return SandboxError(404, "resource not found")


def not_numeric(object_id: str) -> SandboxError:
    return SandboxError(
        404,
        "Object not found.  objectId are usually numeric.",
        "OBJECT_NOT_FOUND",
        extra={"context": {"id": [object_id]}},
    )


def by_numeric_id(queryset: QuerySet[SandboxRecord]) -> QuerySet[SandboxRecord]:
    return queryset.annotate(number=Cast("crm_id", BigIntegerField())).order_by("number")


def history_entry(change: SandboxPropertyChange) -> dict:
    entry: dict = {
        "value": "" if change.value is None else str(change.value),
        "timestamp": format_datetime(change.changed_at),
        "sourceType": change.source_type,
    }
    if change.source_id:
        entry["sourceId"] = change.source_id
        user_id = change.source_id.removeprefix("userId:")
        if user_id != change.source_id and user_id.isdigit():
            entry["updatedByUserId"] = int(user_id)
    return entry


@dataclass
class ObjectContext:
    """One object type of one portal, as a request sees it."""

    account: SandboxAccount
    object_name: str
    properties: dict[str, SandboxProperty] = field(default_factory=dict)

    @classmethod
    def load(cls, call: Call, object_type: str, access: str | None = None) -> "ObjectContext":
        """The object's context, once the token is known to hold the scope ``access`` needs
        (``read``, ``write``, or ``schema`` for property definitions)."""
        object_name = object_name_of(object_type)
        if access == "schema":
            require_any_scope(
                call, f"crm.schemas.{object_name}.read", f"crm.objects.{object_name}.read"
            )
        elif access is not None:
            require_object_scope(call, object_name, access)
        properties = {
            prop.name: prop
            for prop in property_cache.CACHE.properties(call.account.pk)
            if prop.object_name == object_name
        }
        return cls(call.account, object_name, properties)

    @property
    def type_id(self) -> str:
        return schema.OBJECT_TYPE_IDS[self.object_name]

    @property
    def last_modified(self) -> str:
        return schema.LAST_MODIFIED[self.object_name]

    @cached_property
    def stages(self) -> dict[str, dict[str, str]]:
        stage_property = self.properties.get("dealstage")
        pipelines = stage_property.extra.get("pipelines", []) if stage_property else []
        return schema.stage_metadata(pipelines)

    @cached_property
    def stage_pipelines(self) -> dict[str, str]:
        stage_property = self.properties.get("dealstage")
        return {
            stage["id"]: pipeline["id"]
            for pipeline in (stage_property.extra.get("pipelines", []) if stage_property else [])
            for stage in pipeline["stages"]
        }

    @cached_property
    def owner_ids(self) -> dict[str, SandboxUser]:
        return {user.owner_id: user for user in SandboxUser.objects.filter(account=self.account)}

    def live(self) -> QuerySet[SandboxRecord]:
        return store.live_records(self.account, self.object_name)

    def archived(self) -> QuerySet[SandboxRecord]:
        return SandboxRecord.objects.filter(
            account=self.account, object_name=self.object_name, deleted_at__isnull=False
        )

    def known(self, names: Iterable[str]) -> list[str]:
        """The names that are properties of this object (HubSpot ignores the others)."""
        return [name for name in names if name in self.properties]

    def selected(self, requested: Sequence[str]) -> list[str]:
        chosen = self.known(requested) if requested else list(DEFAULT_PROPERTIES[self.object_name])
        always = ("createdate", "hs_object_id", self.last_modified)
        return list(dict.fromkeys([*chosen, *always]))

    def values(self, crm_id: str, stored: dict, created: datetime, updated: datetime) -> dict:
        """Stored values plus the ones HubSpot computes."""
        result = dict(stored)
        result["createdate"] = format_datetime(created)
        result["hs_object_id"] = crm_id
        result[self.last_modified] = format_datetime(updated)
        if self.object_name == "contacts" and stored.get("email"):
            result["hs_email_domain"] = stored["email"].rpartition("@")[2]
        if self.object_name == "deals":
            stage = stored.get("dealstage") or ""
            if not stored.get("pipeline") and stage in self.stage_pipelines:
                # A deal always sits in a pipeline; seed data may name only the stage.
                result["pipeline"] = self.stage_pipelines[stage]
            metadata = self.stages.get(stage)
            if metadata is not None:
                closed = metadata["isClosed"] == "true"
                probability = metadata["probability"]
                result["hs_is_closed"] = "true" if closed else "false"
                result["hs_is_closed_won"] = (
                    "true" if closed and float(probability) >= 1 else "false"
                )
                result["hs_deal_stage_probability"] = format_number_text(probability)
        return result

    @cached_property
    def values_key(self) -> str:
        """What ``values`` depends on besides the record (the object and its pipelines)."""
        stage_property = self.properties.get("dealstage")
        pipelines = stage_property.extra.get("pipelines", []) if stage_property else []
        return json.dumps([self.object_name, pipelines], sort_keys=True, default=str)

    def record_values(self, record: SandboxRecord | CachedRecord) -> dict:
        """``values`` of a record, kept on a cached one while ``values_key`` holds (shared)."""
        if not isinstance(record, CachedRecord):
            return self.values(record.crm_id, record.values, record.created_at, record.updated_at)
        memo = record.memo
        if memo is not None and memo[0] == self.values_key:
            return memo[1]
        values = self.values(record.crm_id, record.values, record.created_at, record.updated_at)
        record.memo = (self.values_key, values)
        return values

    def linked_values(
        self, records: Sequence[SandboxRecord | CachedRecord] | None = None
    ) -> dict[int, dict[str, str]]:
        """The LINKED values of ``records`` (None: of every record of the object), by pk, in
        one query; a record without them is left out.

        A contact's ``associatedcompanyid`` is its primary company: the one associated with
        the Primary label, else the first company associated with it."""
        if self.object_name not in LINKED:
            return {}
        links = SandboxAssociation.objects.filter(
            account=self.account,
            from_record__object_name="contacts",
            to_record__object_name="companies",
            to_record__deleted_at__isnull=True,
        )
        if records is not None:
            links = links.filter(from_record_id__in=[record.pk for record in records])
        primary: dict[int, str] = {}
        labelled: set[int] = set()
        rows = links.order_by("pk").values_list("from_record_id", "type_id", "to_record__crm_id")
        for contact_pk, type_id, company_id in rows:
            if contact_pk in labelled:
                continue
            if type_id == PRIMARY_COMPANY_TYPE:
                primary[contact_pk] = company_id
                labelled.add(contact_pk)
            else:
                primary.setdefault(contact_pk, company_id)
        return {pk: {"associatedcompanyid": company_id} for pk, company_id in primary.items()}

    def render(
        self,
        record: SandboxRecord | CachedRecord,
        names: Sequence[str],
        *,
        history_names: Sequence[str] = (),
        history: dict[str, list[SandboxPropertyChange]] | None = None,
        linked: dict[str, str] | None = None,
    ) -> dict:
        """HubSpot's SimplePublicObject for ``record``, with its ``linked_values`` when the
        caller has them (the LINKED properties read as null otherwise)."""
        current = self.record_values(record)
        if linked:
            current = {**current, **linked}  # a cached record's values are shared
        body: dict = {
            "id": record.crm_id,
            "properties": {name: current.get(name) for name in names},
            "createdAt": format_datetime(record.created_at),
            "updatedAt": format_datetime(record.updated_at),
            "archived": record.deleted_at is not None,
        }
        if record.deleted_at is not None:
            body["archivedAt"] = format_datetime(record.deleted_at)
        if history_names:
            body["propertiesWithHistory"] = {
                name: self._history(record, name, current, history or {}) for name in history_names
            }
        return body

    def _history(
        self,
        record: SandboxRecord | CachedRecord,
        name: str,
        current: dict,
        history: dict[str, list[SandboxPropertyChange]],
    ) -> list[dict]:
        if name in schema.COMPUTED[self.object_name]:
            if current.get(name) is None:
                return []
            at = record.created_at if name in {"createdate", "hs_object_id"} else record.updated_at
            return [
                {
                    "value": current[name],
                    "timestamp": format_datetime(at),
                    "sourceType": "CALCULATED",
                }
            ]
        return [history_entry(change) for change in history.get(name, [])]

    def render_many(
        self,
        records: Sequence[SandboxRecord | CachedRecord],
        requested: Sequence[str],
        history_requested: Sequence[str] = (),
    ) -> list[dict]:
        names = self.selected(requested)
        history_names = self.known(history_requested)
        history = store.history(records, history_names) if history_names else {}
        wanted = LINKED.get(self.object_name, frozenset()) & {*names, *history_names}
        linked = self.linked_values(records) if wanted and records else {}
        return [
            self.render(
                record,
                names,
                history_names=history_names,
                history=history.get(record.pk, {}),
                linked=linked.get(record.pk),
            )
            for record in records
        ]

    def associations(self, record: SandboxRecord, to_names: Sequence[str]) -> dict:
        """The v3 ``associations`` map: one entry per association type, empty keys left out."""
        result: dict = {}
        for to_name in to_names:
            links = (
                SandboxAssociation.objects.filter(
                    from_record=record,
                    to_record__object_name=to_name,
                    to_record__deleted_at__isnull=True,
                )
                .select_related("to_record")
                .order_by("to_record_id", "type_id")
            )
            results = [
                {
                    "id": link.to_record.crm_id,
                    "type": _type_name(link.type_id, self.object_name, to_name),
                }
                for link in links
            ]
            if results:
                result[to_name] = {"results": results}
        return result


def _type_name(type_id: int, source: str, target: str) -> str:
    kind = ASSOCIATION_TYPES.get(type_id)
    if kind is not None:
        return kind.name
    return f"{SINGULAR[source]}_to_{SINGULAR[target]}"


def format_number_text(text: str) -> str:
    return format_number(Decimal(text))


def require_any_scope(call: Call, *scopes: str) -> None:
    """Refuse the call (403 MISSING_SCOPES) unless its token holds one of ``scopes``."""
    granted = set(call.token.scopes.split()) if call.token and call.token.scopes else None
    if granted is None or granted & set(scopes):
        return
    call.require_scope(scopes[0])


def require_object_scope(call: Call, object_name: str, access: str) -> None:
    require_any_scope(call, f"crm.objects.{object_name}.{access}")
