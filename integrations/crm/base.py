"""The one client protocol both adapters implement.

Nothing outside governance/guard.py calls these methods (DESIGN.md invariant 1); the guard
wraps a client obtained from connection resolution.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from integrations.crm.profiles import CrmProfile
from integrations.crm.types import (
    BatchWriteResult,
    ObjectType,
    Operator,
    Owner,
    Page,
    Precondition,
    PropertySpec,
    Record,
    SearchFilter,
    SearchQuery,
    WriteResult,
)


@dataclass(frozen=True)
class StageInfo:
    """A deal stage as the CRM's own metadata describes it."""

    value: str
    label: str
    closed: bool
    won: bool


class CrmClient(Protocol):
    profile: CrmProfile

    def describe(self, object_type: ObjectType) -> list[PropertySpec]:
        """The object's properties as this connection's user sees them."""

    def search(self, query: SearchQuery) -> Page:
        """One page of matching records; pass ``next_cursor`` back to get the next."""

    def get(self, object_type: ObjectType, record_id: str, properties: Sequence[str]) -> Record:
        """One record with the chosen properties and when each last changed."""

    def get_many(
        self, object_type: ObjectType, record_ids: Sequence[str], properties: Sequence[str]
    ) -> list[Record]:
        """Records in the order asked; ids that do not exist (or are not visible) are left out."""

    def associated_ids(
        self, object_type: ObjectType, record_id: str, to_type: ObjectType
    ) -> list[str]:
        """Ids of the ``to_type`` records associated with this record."""

    def associations_many(
        self, object_type: ObjectType, record_ids: Sequence[str], to_type: ObjectType
    ) -> dict[str, list[str]]:
        """For each id asked (in the order asked, every id present, [] when none), the ids
        of the associated ``to_type`` records. A few requests for any number of ids
        (HubSpot: 1,000 per batch read; Salesforce: one query per chunk of ids)."""

    def update(
        self,
        object_type: ObjectType,
        record_id: str,
        properties: Mapping[str, str | None],
        *,
        precondition: Precondition | None = None,
    ) -> WriteResult:
        """Write the properties; with a precondition, raise Conflict instead of clobbering."""

    def update_many(
        self, object_type: ObjectType, updates: Mapping[str, Mapping[str, str | None]]
    ) -> BatchWriteResult:
        """Batch update (HubSpot: 100 per request; Salesforce: 200 per collection); every
        record not written is in ``failed`` with the CRM's reason."""

    def create(
        self,
        object_type: ObjectType,
        properties: Mapping[str, str | None],
        *,
        associations: Mapping[ObjectType, Sequence[str]] | None = None,
    ) -> WriteResult:
        """Create a record, associated with existing records."""

    def owners(self) -> list[Owner]:
        """The CRM users who can own records, with their teams."""

    def deal_stages(self) -> list[StageInfo]:
        """Deal stages with closed/won flags from the CRM's own metadata."""


def search_all(client: CrmClient, query: SearchQuery, *, max_records: int = 10_000) -> list[Record]:
    """Follow the cursor until the results (or ``max_records``) run out."""
    records: list[Record] = []
    cursor = query.cursor
    while True:
        page = client.search(_with_cursor(query, cursor))
        records.extend(page.records)
        cursor = page.next_cursor
        if cursor is None or len(records) >= max_records:
            return records[:max_records]


def by_email(object_type: ObjectType, email_property: str, emails: Sequence[str]) -> SearchQuery:
    """Records whose email is one of ``emails`` (compared lower-cased)."""
    values = tuple(sorted({email.strip().lower() for email in emails if email.strip()}))
    return SearchQuery(
        object_type=object_type,
        filter_groups=((SearchFilter(email_property, Operator.IN, values=values),),),
    )


def by_domain(object_type: ObjectType, domain_property: str, domain: str) -> SearchQuery:
    """Records whose domain (or website) ends with ``domain``."""
    domain = domain.strip().lower().removeprefix("www.")
    return SearchQuery(
        object_type=object_type,
        filter_groups=((SearchFilter(domain_property, Operator.ENDS_WITH, value=domain),),),
    )


def _with_cursor(query: SearchQuery, cursor: str | None) -> SearchQuery:
    return replace(query, cursor=cursor)
