"""A rep's record access on HubSpot, applied by CRM Steward because HubSpot's API does not.

HubSpot scopes an app's token to the portal, not to the person who installed it, while the
HubSpot UI limits a user to owned, team or all records. For a rep's own HubSpot connection
this wrapper enforces the level the workspace's policy gives the rep's role, on every read
and write: searches only match allowed owners, reads of other records look like missing
records (as Salesforce answers them), and writes to them are refused before any request.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from governance.models import RecordAccess
from integrations.crm import errors
from integrations.crm.base import CrmClient
from integrations.crm.types import (
    BatchWriteResult,
    ObjectType,
    Operator,
    Page,
    Precondition,
    Record,
    SearchFilter,
    SearchQuery,
    WriteResult,
)

logger = logging.getLogger(__name__)


def allowed_owner_ids(
    client: CrmClient, level: str, own_owner_id: str, teams: Sequence[str]
) -> frozenset[str] | None:
    """The owner ids whose records the rep may touch; None means every record."""
    if level == RecordAccess.ALL:
        return None
    allowed = {own_owner_id} if own_owner_id else set()
    if level == RecordAccess.TEAM and teams:
        mine = set(teams)
        allowed |= {owner.id for owner in client.owners() if mine & set(owner.teams)}
    return frozenset(allowed)


class HubSpotRecordAccess:
    def __init__(
        self, inner: CrmClient, *, allowed_owners: frozenset[str] | None, own_owner_id: str
    ) -> None:
        self.inner = inner
        self.profile = inner.profile
        self.allowed = allowed_owners
        self.own_owner_id = own_owner_id

    def _owner_field(self, object_type: ObjectType) -> str:
        return self.profile.native_field(object_type, "owner")

    def _may(self, record: Record) -> bool:
        if self.allowed is None:
            return True
        owner = record.properties.get(self._owner_field(record.object_type))
        return owner is not None and owner in self.allowed

    def _hidden(self, object_type: ObjectType, record_id: str) -> errors.NotFound:
        return errors.NotFound(
            f"No {object_type} {record_id} within your HubSpot record access",
            provider="hubspot",
            status=404,
        )

    def _check_writable(self, object_type: ObjectType, record_id: str) -> None:
        if self.allowed is None:
            return
        record = self.inner.get(object_type, record_id, [self._owner_field(object_type)])
        if not self._may(record):
            raise errors.PermissionDenied(
                f"{object_type} {record_id} is outside your HubSpot record access, so CRM "
                "Steward does not change it for you",
                provider="hubspot",
                status=403,
                code="RECORD_ACCESS",
            )

    def _check_owner_value(self, object_type: ObjectType, properties: Mapping) -> None:
        owner = properties.get(self._owner_field(object_type))
        if self.allowed is not None and owner is not None and owner not in self.allowed:
            raise errors.PermissionDenied(
                f"You may not give a {object_type} to owner {owner}: it would leave your "
                "HubSpot record access",
                provider="hubspot",
                status=403,
                code="RECORD_ACCESS",
            )

    def _with_owner(self, properties: Sequence[str], object_type: ObjectType) -> list[str]:
        owner = self._owner_field(object_type)
        return [*properties, owner] if owner not in properties else list(properties)

    def _strip(self, record: Record, asked: Sequence[str]) -> Record:
        owner = self._owner_field(record.object_type)
        if owner in asked or owner not in record.properties:
            return record
        properties = {k: v for k, v in record.properties.items() if k != owner}
        modified = {k: v for k, v in record.modified_at.items() if k != owner}
        return Record(
            record.object_type, record.id, properties, modified, record.updated_at, record.owner_id
        )

    # --- reads -------------------------------------------------------------------------------
    def describe(self, object_type):
        return self.inner.describe(object_type)

    def owners(self):
        return self.inner.owners()

    def deal_stages(self):
        return self.inner.deal_stages()

    def search(self, query: SearchQuery):
        if self.allowed is None:
            return self.inner.search(query)
        if not self.allowed:
            return Page(records=(), total=0)
        only_allowed = SearchFilter(
            self._owner_field(query.object_type), Operator.IN, values=tuple(sorted(self.allowed))
        )
        groups = tuple((*group, only_allowed) for group in query.filter_groups) or (
            (only_allowed,),
        )
        return self.inner.search(replace(query, filter_groups=groups))

    def get(self, object_type: ObjectType, record_id: str, properties: Sequence[str]) -> Record:
        record = self.inner.get(object_type, record_id, self._with_owner(properties, object_type))
        if not self._may(record):
            raise self._hidden(object_type, record_id)
        return self._strip(record, properties)

    def get_many(self, object_type, record_ids, properties) -> list[Record]:
        records = self.inner.get_many(
            object_type, record_ids, self._with_owner(properties, object_type)
        )
        return [self._strip(r, properties) for r in records if self._may(r)]

    def associated_ids(self, object_type, record_id, to_type) -> list[str]:
        self.get(object_type, record_id, [])
        ids = self.inner.associated_ids(object_type, record_id, to_type)
        if self.allowed is None or not ids:
            return ids
        visible = {r.id for r in self.get_many(to_type, ids, [])}
        return [i for i in ids if i in visible]

    def associations_many(self, object_type, record_ids, to_type) -> dict[str, list[str]]:
        """As ``associated_ids`` for many records at once: a record outside the access has
        nothing associated, and associated records outside it are left out."""
        if self.allowed is None:
            return self.inner.associations_many(object_type, record_ids, to_type)
        asked = list(dict.fromkeys(record_ids))
        visible = [r.id for r in self.get_many(object_type, asked, [])] if asked else []
        found = self.inner.associations_many(object_type, visible, to_type) if visible else {}
        targets = list(dict.fromkeys(i for ids in found.values() for i in ids))
        shown = {r.id for r in self.get_many(to_type, targets, [])} if targets else set()
        return {
            record_id: [i for i in found.get(record_id, []) if i in shown] for record_id in asked
        }

    # --- writes ------------------------------------------------------------------------------
    def update(
        self, object_type, record_id, properties, *, precondition: Precondition | None = None
    ) -> WriteResult:
        self._check_writable(object_type, record_id)
        self._check_owner_value(object_type, properties)
        return self.inner.update(object_type, record_id, properties, precondition=precondition)

    def update_many(self, object_type, updates) -> BatchWriteResult:
        """Like both adapters' batches: records outside the access are refused as data in
        ``failed``; the others are sent."""
        if self.allowed is None:
            return self.inner.update_many(object_type, updates)
        owner_field = self._owner_field(object_type)
        visible = {
            r.id
            for r in self.inner.get_many(object_type, list(updates), [owner_field])
            if self._may(r)
        }
        allowed = {}
        refused: dict[str, errors.CrmError] = {}
        for record_id, properties in updates.items():
            owner = properties.get(owner_field)
            if record_id not in visible:
                refused[record_id] = self._hidden(object_type, record_id)
            elif owner is not None and owner not in self.allowed:
                refused[record_id] = errors.PermissionDenied(
                    f"You may not give a {object_type} to owner {owner}: it would leave your "
                    "HubSpot record access",
                    provider="hubspot",
                    status=403,
                    code="RECORD_ACCESS",
                )
            else:
                allowed[record_id] = properties
        sent = self.inner.update_many(object_type, allowed) if allowed else BatchWriteResult(())
        return BatchWriteResult(sent.written, {**refused, **sent.failed})

    def create(self, object_type, properties, *, associations=None) -> WriteResult:
        properties = dict(properties)
        if self.allowed is not None:
            owner_field = self._owner_field(object_type)
            # A rep's new record is theirs unless they name another owner they may use.
            properties.setdefault(owner_field, self.own_owner_id or None)
            self._check_owner_value(object_type, properties)
            for to_type, ids in (associations or {}).items():
                for target in ids:
                    self.get(to_type, target, [])
        return self.inner.create(object_type, properties, associations=associations)
