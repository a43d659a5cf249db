"""The org as one user sees it: field-level security, sharing, and records as rows.

Salesforce enforces both natively on a user's token, so every Salesforce endpoint works
through an ``Org`` made for the token's SandboxUser:

* fields hidden by field-level security do not exist for the user (absent from describe,
  INVALID_FIELD in queries and writes); read-only ones describe as not createable and not
  updateable;
* records of Account, Contact and Opportunity are editable per the user's access (owned /
  team / all), and visible per it or, read-only, per a wider ``read_access`` (store.py);
  an OpportunityContactRole follows its opportunity; stages and users are visible to
  everyone.

Records are answered as rows (rows.RecordRow; users as plain dicts).
"""

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from django.db.models import QuerySet

from integrations.sandbox import property_cache, store
from integrations.sandbox.gateway import SandboxError
from integrations.sandbox.models import (
    Access,
    SandboxAccount,
    SandboxProperty,
    SandboxRecord,
    SandboxUser,
)
from integrations.sandbox.record_cache import CACHE
from integrations.sandbox.salesforce import metadata, record_rows
from integrations.sandbox.salesforce.pushdown import Narrowing
from integrations.sandbox.salesforce.rows import RecordRow
from integrations.sandbox.salesforce.schema import field_dict
from integrations.sandbox.salesforce.values import format_stamp, is_id
from integrations.sandbox.soql_schema import Catalog, ObjectSchema

Row = Mapping[str, Any]
NOT_FOUND = "The requested resource does not exist"


def not_found() -> SandboxError:
    return SandboxError(404, NOT_FOUND, "NOT_FOUND")


def read_only() -> SandboxError:
    """Salesforce's answer to a write on a record the user may not edit (DML errors are 400)."""
    return SandboxError(
        400, "insufficient access rights on object id", "INSUFFICIENT_ACCESS_OR_READONLY"
    )


def _lacking(fields: Mapping[str, SandboxProperty], flag: str) -> frozenset[str]:
    """The fields whose describe says ``flag: false`` (``filterable``, ``sortable``)."""
    return frozenset(name for name, prop in fields.items() if not prop.extra.get(flag, True))


class Org:
    def __init__(self, account: SandboxAccount, user: SandboxUser, version: str) -> None:
        self.account = account
        self.user = user
        self.version = version
        self._rows_by_id: dict[str, dict[str, Row]] = {}

    # --- Metadata -------------------------------------------------------------------------

    @cached_property
    def _properties(self) -> dict[str, dict[str, SandboxProperty]]:
        by_object: dict[str, dict[str, SandboxProperty]] = {}
        for prop in property_cache.CACHE.properties(self.account.pk):
            by_object.setdefault(prop.object_name, {})[prop.name] = prop
        return by_object

    def objects(self) -> list[str]:
        return sorted(self._properties)

    def object_name(self, name: str) -> str | None:
        """The installed object's spelling of ``name`` (Salesforce names are case-insensitive)."""
        for object_name in self._properties:
            if object_name.lower() == name.lower():
                return object_name
        return None

    def require_object(self, name: str) -> str:
        object_name = self.object_name(name)
        if object_name is None:
            raise not_found()
        return object_name

    def all_fields(self, object_name: str) -> dict[str, SandboxProperty]:
        return self._properties.get(object_name, {})

    def field_access(self, object_name: str, field: str) -> str:
        return self.user.field_access(object_name, field)

    def visible_fields(self, object_name: str) -> dict[str, SandboxProperty]:
        return {
            name: prop
            for name, prop in self.all_fields(object_name).items()
            if self.field_access(object_name, name) != "hidden"
        }

    def visible_field(self, object_name: str, name: str) -> SandboxProperty | None:
        lowered = name.lower()
        for field_name, prop in self.visible_fields(object_name).items():
            if field_name.lower() == lowered:
                return prop
        return None

    def describe_field(self, prop: SandboxProperty) -> dict:
        field = field_dict(prop)
        if self.field_access(prop.object_name, prop.name) == "read_only":
            field["createable"] = False
            field["updateable"] = False
        return field

    def describe_fields(self, object_name: str) -> list[dict]:
        return [self.describe_field(prop) for prop in self.visible_fields(object_name).values()]

    def catalog(self) -> Catalog:
        schemas = []
        for object_name in self.objects():
            fields = self.visible_fields(object_name)
            schemas.append(
                ObjectSchema(
                    object_name,
                    {name: prop.type for name, prop in fields.items()},
                    {
                        prop.extra["relationshipName"]: prop.extra["referenceTo"][0]
                        for prop in fields.values()
                        if prop.extra.get("relationshipName") and prop.extra.get("referenceTo")
                    },
                    _lacking(fields, "filterable"),
                    _lacking(fields, "sortable"),
                )
            )
        return Catalog(schemas)

    def relationship(self, object_name: str, relationship: str) -> tuple[str, str]:
        """(lookup field, target object) of one of the object's parent relationships."""
        for name, prop in self.all_fields(object_name).items():
            if prop.extra.get("relationshipName") == relationship and prop.extra["referenceTo"]:
                return name, prop.extra["referenceTo"][0]
        raise KeyError(relationship)

    # --- Sharing --------------------------------------------------------------------------

    def records(self, object_name: str, *, include_deleted: bool = False) -> list[SandboxRecord]:
        """The records of ``object_name`` this user may see (``can_edit``: may change)."""
        queryset: QuerySet[SandboxRecord] = SandboxRecord.objects.filter(
            account=self.account, object_name=object_name
        )
        if not include_deleted:
            queryset = queryset.filter(deleted_at__isnull=True)
        return self.shared(object_name, queryset)

    def shared(
        self, object_name: str, queryset: QuerySet[SandboxRecord], user: SandboxUser | None = None
    ) -> list[SandboxRecord]:
        user = user or self.user
        allowed = self._allowed_parents(object_name, user)
        return [
            record
            for record in self._shared_queryset(object_name, queryset, user)
            if allowed is None or record.values.get("OpportunityId") in allowed
        ]

    def _shared_queryset(
        self, object_name: str, queryset: QuerySet[SandboxRecord], user: SandboxUser
    ) -> QuerySet[SandboxRecord]:
        if object_name in metadata.SHARED_OBJECTS:
            return store.visible_to(user, queryset)
        return queryset

    def _allowed_parents(self, object_name: str, user: SandboxUser) -> set[str] | None:
        """The opportunities whose contact roles ``user`` may see; None: no restriction."""
        if object_name == "OpportunityContactRole" and store.read_scope(user) != Access.ALL:
            return self._visible_opportunities(user)
        return None

    def _visible_opportunities(self, user: SandboxUser) -> set[str]:
        opportunities = SandboxRecord.objects.filter(
            account=self.account, object_name="Opportunity", deleted_at__isnull=True
        )
        return set(store.visible_to(user, opportunities).values_list("crm_id", flat=True))

    def can_access(self, record: SandboxRecord, user: SandboxUser | None = None) -> bool:
        """Whether the user may see ``record``."""
        user = user or self.user
        if record.object_name in metadata.SHARED_OBJECTS:
            return store.can_access(user, record)
        if record.object_name == "OpportunityContactRole":
            parent = self.find("Opportunity", record.values.get("OpportunityId", ""))
            return parent is not None and self.can_access(parent, user)
        return True

    def can_edit(self, record: SandboxRecord, user: SandboxUser | None = None) -> bool:
        """Whether the user may change ``record``: sharing may give read-only access."""
        user = user or self.user
        if record.object_name in metadata.SHARED_OBJECTS:
            return store.can_edit(user, record)
        if record.object_name == "OpportunityContactRole":  # controlled by its opportunity
            parent = self.find("Opportunity", record.values.get("OpportunityId", ""))
            return parent is not None and self.can_edit(parent, user)
        return True

    # --- Finding records ------------------------------------------------------------------

    def find(self, object_name: str, record_id: str) -> SandboxRecord | None:
        """A record by its 15- or 18-character id, deleted or not, whoever may see it."""
        if not is_id(record_id):
            return None
        records = SandboxRecord.objects.filter(account=self.account, object_name=object_name)
        if len(record_id) == 18:
            return records.filter(crm_id=record_id).first()
        # Ids compare case-sensitively; the database's LIKE may not.
        candidates = records.filter(crm_id__startswith=record_id)
        return next((r for r in candidates if r.crm_id[:15] == record_id), None)

    def locate(self, object_name: str, record_id: str, *, for_write: bool) -> SandboxRecord:
        """The record a REST call names, or the error Salesforce answers for it."""
        if not is_id(record_id):
            # Anything but an id is read as an external id field name.
            raise SandboxError(
                404,
                f"Provided external ID field does not exist or is not accessible: {record_id}",
                "NOT_FOUND",
            )
        record = self.find(object_name, record_id)
        if record is None:
            raise not_found()
        if record.deleted_at is not None:
            raise SandboxError(404, "entity is deleted", "ENTITY_IS_DELETED", fields=[])
        if for_write and not self.can_edit(record):
            # Hidden or shared read-only alike: GET and queries answer a read-only record.
            raise read_only()
        if not self.can_access(record):
            raise not_found()
        return record

    def find_user(self, user_id: str) -> SandboxUser | None:
        if not is_id(user_id):
            return None
        for user in self.users:
            if user.crm_user_id[: len(user_id)] == user_id:
                return user
        return None

    @cached_property
    def users(self) -> list[SandboxUser]:
        return list(SandboxUser.objects.filter(account=self.account).order_by("created_at", "pk"))

    @cached_property
    def default_user_id(self) -> str:
        """Who created and changed records no API user touched (seeded data)."""
        return self.users[0].crm_user_id if self.users else self.user.crm_user_id

    # --- Rows -----------------------------------------------------------------------------

    @cached_property
    def stages(self) -> dict[str, dict]:
        """Live stages by API name (from the record cache: shared values, read-only)."""
        return {
            record.values["ApiName"]: record.values
            for record in CACHE.records(self.account.pk, "OpportunityStage")
        }

    def row(self, record: SandboxRecord) -> Row:
        return RecordRow(self, record, self.all_fields(record.object_name))

    def user_row(self, user: SandboxUser) -> Row:
        stamp = format_stamp(user.created_at)
        name = " ".join(part for part in (user.first_name, user.last_name) if part)
        last_name = user.last_name or user.email.split("@")[0]
        values = {
            "Id": user.crm_user_id,
            "Username": user.email,
            "LastName": last_name,
            "FirstName": user.first_name or None,
            "Name": name or last_name,
            "CompanyName": self.account.name,
            "Department": user.team or None,
            "Title": None,
            "Email": user.email,
            "Alias": ((user.first_name[:1] + last_name[:4]) or last_name[:5]).lower()[:8],
            "IsActive": user.is_active,
            "UserType": "Standard",
            "ManagerId": None,
            "CreatedDate": stamp,
            "CreatedById": self.default_user_id,
            "LastModifiedDate": stamp,
            "LastModifiedById": self.default_user_id,
            "SystemModstamp": stamp,
        }
        return {name: values.get(name) for name in self.all_fields("User")}

    def rows(
        self, object_name: str, *, include_deleted: bool = False, narrowed: Narrowing | None = None
    ) -> list[Row]:
        """Visible rows; ``narrowed`` may leave out records that cannot match a query."""
        if object_name == "User":
            return [self.user_row(user) for user in self.users]
        return record_rows.visible_rows(
            self, object_name, include_deleted=include_deleted, narrowed=narrowed
        )

    def rows_with_ids(self, object_name: str, ids: Iterable[str]) -> list[Row]:
        """Visible live rows among ``ids`` (18-character ids), in one query."""
        if object_name == "User":
            wanted = set(ids)
            return [self.user_row(u) for u in self.users if u.crm_user_id in wanted]
        return record_rows.rows_with_ids(self, object_name, list(ids))

    def allowed_parents(self, object_name: str) -> set[str] | None:
        """The opportunities whose contact roles the user may see; None: no restriction."""
        return self._allowed_parents(object_name, self.user)

    def row_by_id(self, object_name: str, record_id: str) -> Row | None:
        """A visible row by id, from a per-object cache (parents of query results)."""
        if object_name not in self._rows_by_id:
            self._rows_by_id[object_name] = {row["Id"]: row for row in self.rows(object_name)}
        return self._rows_by_id[object_name].get(record_id)

    def resolve_parent(self, object_name: str, row: Row, relationship: str) -> Row | None:
        field, target = self.relationship(object_name, relationship)
        parent_id = row.get(field)
        if not parent_id or self.object_name(target) is None:
            return None
        return self.row_by_id(target, parent_id)

    def attributes(self, object_name: str, row: Row) -> dict[str, str]:
        return {
            "type": object_name,
            "url": f"/services/data/v{self.version}/sobjects/{object_name}/{row['Id']}",
        }

    def render(self, object_name: str, row: Row, fields: Iterable[str] | None = None) -> dict:
        """A record as GET answers it: ``attributes``, then the fields the user may see."""
        names = list(fields) if fields is not None else list(self.visible_fields(object_name))
        return {"attributes": self.attributes(object_name, row), **{n: row.get(n) for n in names}}
