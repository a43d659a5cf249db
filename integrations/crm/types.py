"""Normalised CRM types shared by both adapters.

Object types are canonical (``company``, ``contact``, ``deal``); property names are the
CRM's own (``dealname`` / ``Name``), mapped from canonical field names by the profile.
Values cross this boundary as strings, the way HubSpot carries them: numbers in plain
decimal notation, dates ``YYYY-MM-DD``, datetimes ISO 8601 UTC, booleans ``"true"`` /
``"false"``, an empty value as ``None``. The Salesforce adapter converts to and from its
typed JSON using the object's describe.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from integrations.crm.errors import CrmError


class Provider(StrEnum):
    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"


class ObjectType(StrEnum):
    COMPANY = "company"
    CONTACT = "contact"
    DEAL = "deal"


class PropertyType(StrEnum):
    STRING = "string"
    TEXT = "text"  # long text
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    ENUMERATION = "enumeration"
    PHONE = "phone"
    EMAIL = "email"
    REFERENCE = "reference"  # an owner or another record
    ID = "id"


@dataclass(frozen=True)
class PropertyOption:
    value: str
    label: str


@dataclass(frozen=True)
class PropertySpec:
    """One property as the connection's user sees it (hidden ones are not listed at all)."""

    name: str
    label: str
    type: PropertyType
    options: tuple[PropertyOption, ...] = ()
    read_only: bool = False  # calculated, system, or read-only for this user
    custom: bool = False
    description: str = ""
    # The most characters a text value may hold, where the CRM says (Salesforce: the
    # describe's ``length``; HubSpot: 65,536 for any string property); None: no stated limit.
    max_length: int | None = None

    def option_values(self) -> tuple[str, ...]:
        return tuple(option.value for option in self.options)


@dataclass(frozen=True)
class Record:
    object_type: ObjectType
    id: str
    properties: Mapping[str, str | None]
    # When each returned property last changed in the CRM, where the CRM tells
    # (HubSpot: property history; Salesforce: the record's LastModifiedDate).
    modified_at: Mapping[str, datetime | None] = field(default_factory=dict)
    updated_at: datetime | None = None
    owner_id: str | None = None


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"  # substring, case-insensitive
    ENDS_WITH = "ends_with"  # for domains and email addresses
    HAS_VALUE = "has_value"
    NO_VALUE = "no_value"


@dataclass(frozen=True)
class SearchFilter:
    property: str
    operator: Operator
    value: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sort:
    property: str
    descending: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """Filters within a group are ANDed; groups are ORed (an empty query matches all)."""

    object_type: ObjectType
    filter_groups: tuple[tuple[SearchFilter, ...], ...] = ()
    properties: tuple[str, ...] = ()
    sorts: tuple[Sort, ...] = ()
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    records: tuple[Record, ...]
    total: int
    next_cursor: str | None = None


@dataclass(frozen=True)
class Precondition:
    """Write only if nothing changed since the agent read the record.

    ``expected`` holds the values the agent read; ``unmodified_since`` the time of that
    read. Salesforce checks the time natively (If-Unmodified-Since -> 412); HubSpot has no
    such check, so its adapter re-reads and compares both.
    """

    unmodified_since: datetime
    expected: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteResult:
    object_type: ObjectType
    id: str
    properties: Mapping[str, str | None]
    created: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True)
class BatchWriteResult:
    """What a batch wrote, and, for every record it did not write, the reason.

    A refusal is data here rather than an exception, because the other records of the batch
    were written; callers must look at ``failed`` (a silent partial failure is a bug).
    """

    written: tuple[WriteResult, ...]
    failed: Mapping[str, "CrmError"] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [result.id for result in self.written]


@dataclass(frozen=True)
class Owner:
    """A CRM user who can own records (HubSpot owner / Salesforce User)."""

    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    user_id: str | None = None
    teams: tuple[str, ...] = ()
