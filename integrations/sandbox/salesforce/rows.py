"""A record's values as Salesforce answers them, computed only when asked for.

Besides the values it stores, a row answers the fields Salesforce maintains itself (Id,
IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, CreatedById, LastModifiedById)
and the ones it derives (Contact.Name; Opportunity.IsClosed, IsWon, ForecastCategory and
ExpectedRevenue from the stage; compound addresses). A boolean is never null. Queries read
a few fields of many rows, so each value is worked out on first use.
"""

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from integrations.sandbox.models import SandboxProperty, SandboxRecord
from integrations.sandbox.record_cache import CachedRecord
from integrations.sandbox.salesforce.values import format_stamp

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.org import Org

ADDRESSES = {
    "BillingAddress": "Billing",
    "ShippingAddress": "Shipping",
    "MailingAddress": "Mailing",
    "OtherAddress": "Other",
}
ADDRESS_PARTS = {
    "city": "City",
    "country": "Country",
    "geocodeAccuracy": "GeocodeAccuracy",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "postalCode": "PostalCode",
    "state": "State",
    "street": "Street",
}
_MISSING = object()


class StoredRecord(NamedTuple):
    """The columns of a SandboxRecord a row needs (queries read these, not model instances)."""

    object_name: str
    crm_id: str
    values: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


# Fields answered from the record's columns or worked out from other values, not read
# from the stored ones (as they are for every other field).
_SYSTEM = frozenset(
    {
        "Id",
        "IsDeleted",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "CreatedById",
        "LastModifiedById",
    }
)
_DERIVED = {
    "Contact": _SYSTEM | ADDRESSES.keys() | {"Name"},
    "Opportunity": _SYSTEM
    | ADDRESSES.keys()
    | {
        "IsClosed",
        "IsWon",
        "ForecastCategory",
        "Probability",
        "ForecastCategoryName",
        "ExpectedRevenue",
    },
}
_DERIVED_ELSEWHERE = _SYSTEM | ADDRESSES.keys()


def plain_fields(object_name: str, fields: Mapping[str, SandboxProperty]) -> dict[str, Any]:
    """The fields read as stored, each with what a missing value reads as."""
    derived = _DERIVED.get(object_name, _DERIVED_ELSEWHERE)
    return {
        name: False if prop.type == "boolean" else None
        for name, prop in fields.items()
        if name not in derived
    }


class RecordRow(Mapping[str, Any]):
    __slots__ = ("_cache", "_fields", "_org", "_plain", "_record")

    def __init__(
        self,
        org: "Org",
        record: SandboxRecord | StoredRecord | CachedRecord,
        fields: Mapping[str, SandboxProperty],
        plain: Mapping[str, Any] | None = None,
    ) -> None:
        """``plain`` is ``plain_fields`` of the record's object and ``fields``, for callers
        that make many rows of one object."""
        self._org = org
        self._record = record
        self._fields = fields
        self._plain = plain if plain is not None else plain_fields(record.object_name, fields)
        self._cache: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        # Most fields read as stored: a dictionary lookup, nothing to remember. Queries
        # read a field or two of thousands of rows, so this path stays short.
        default = self._plain.get(name, _MISSING)
        if default is not _MISSING:
            return self._record.values.get(name, default)
        if name not in self._fields:
            raise KeyError(name)
        if self._cache is None:
            self._cache = {}
        value = self._cache.get(name, _MISSING)
        if value is _MISSING:
            value = self._cache[name] = self._value(name)
        return value

    @property
    def record(self) -> "SandboxRecord | StoredRecord | CachedRecord":
        return self._record

    def get(self, name: str, default: Any = None) -> Any:
        # Mapping.get with __getitem__'s short path inlined: queries call this per row.
        plain = self._plain.get(name, _MISSING)
        if plain is not _MISSING:
            return self._record.values.get(name, plain)
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def _value(self, name: str) -> Any:
        """A field worked out rather than read as stored (see ``_DERIVED``)."""
        record, stored = self._record, self._record.values
        if name in _SYSTEM:
            if name == "Id":
                return record.crm_id
            if name == "IsDeleted":
                return record.deleted_at is not None
            if name == "CreatedDate":
                return format_stamp(record.created_at)
            if name in ("LastModifiedDate", "SystemModstamp"):
                return format_stamp(record.updated_at)
            return stored.get(name) or self._default_user()  # CreatedById, LastModifiedById
        if name in ADDRESSES:
            prefix = ADDRESSES[name]
            parts = {key: self.get(prefix + suffix) for key, suffix in ADDRESS_PARTS.items()}
            return parts if any(value is not None for value in parts.values()) else None
        if record.object_name == "Contact" and name == "Name":
            names = (stored.get("FirstName"), stored.get("LastName"))
            return " ".join(part for part in names if part) or None
        if record.object_name == "Opportunity":
            derived = self._opportunity(name)
            if derived is not _MISSING:
                return derived
        return stored.get(name, False if self._fields[name].type == "boolean" else None)

    def _default_user(self) -> str:
        return self._record.values.get("OwnerId") or self._org.default_user_id

    def _opportunity(self, name: str) -> Any:
        stored = self._record.values
        stage = self._org.stages.get(stored.get("StageName") or "")
        if name in ("IsClosed", "IsWon"):
            return bool(stage and stage[name])
        if name == "ForecastCategory":
            return stage["ForecastCategory"] if stage else None
        # Seeded records skip the API, which would have set the stage's defaults.
        if name == "Probability" and name not in stored and stage:
            return stage["DefaultProbability"]
        if name == "ForecastCategoryName" and name not in stored and stage:
            return stage["ForecastCategoryName"]
        if name == "ExpectedRevenue":
            amount, probability = self.get("Amount"), self.get("Probability")
            if amount is None or probability is None:
                return None
            return round(amount * probability / 100, 2)
        return _MISSING
