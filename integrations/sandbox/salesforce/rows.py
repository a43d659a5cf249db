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
from integrations.sandbox.salesforce.values import format_datetime

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


class RecordRow(Mapping[str, Any]):
    __slots__ = ("_cache", "_fields", "_org", "_record")

    def __init__(
        self,
        org: "Org",
        record: SandboxRecord | StoredRecord,
        fields: Mapping[str, SandboxProperty],
    ) -> None:
        self._org = org
        self._record = record
        self._fields = fields
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._fields:
            raise KeyError(name)
        value = self._cache.get(name, _MISSING)
        if value is _MISSING:
            value = self._cache[name] = self._value(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def _value(self, name: str) -> Any:
        record, stored = self._record, self._record.values
        system = {
            "Id": lambda: record.crm_id,
            "IsDeleted": lambda: record.deleted_at is not None,
            "CreatedDate": lambda: format_datetime(record.created_at),
            "LastModifiedDate": lambda: format_datetime(record.updated_at),
            "SystemModstamp": lambda: format_datetime(record.updated_at),
            "CreatedById": lambda: stored.get("CreatedById") or self._default_user(),
            "LastModifiedById": lambda: stored.get("LastModifiedById") or self._default_user(),
        }.get(name)
        if system is not None:
            return system()
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
