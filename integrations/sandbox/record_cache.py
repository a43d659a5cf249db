"""Decoded records of one object of one sandbox account, kept between requests.

Searches read every record of an object; decoding thousands of JSON documents and
timestamps on each request was most of their time. This process keeps them decoded and,
on every use, reads each record's stamp (pk, updated_at, deleted_at, owner) in one narrow
query that decodes nothing, then re-reads only the records whose stamp moved, appeared or
went away. A change made by any process or connection therefore shows on the next read,
as long as it moves one of those columns: every store write moves updated_at (or sets
deleted_at), and a direct ``.update(updated_at=…)`` or a hard delete moves a stamp too.
Property history is not cached (seed backdating rewrites it without touching records).

Stamps are compared as the database's own text of the timestamps, never as decoded
datetimes, so the check stays cheap and exact on SQLite and PostgreSQL alike.
Cached values are shared by concurrent requests: read them, never mutate them.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import connections
from django.db.models import CharField, F, QuerySet
from django.db.models.functions import Cast

from integrations.sandbox import raw_query
from integrations.sandbox.models import SandboxRecord

# Objects kept at once (each holds its records decoded); the least recently used goes.
MAX_OBJECTS = 32
# Changed records are re-read by pk in chunks; past this many, the whole object is.
_CHUNK = 500
_REREAD_ALL_FROM = 2000
_DERIVED_PER_SNAPSHOT = 8

T = TypeVar("T")
# A snapshot's signature when its records were not all read against one stamp answer.
_UNCHECKED = object()
Stamp = tuple[str | None, str | None, int | None]  # updated_at, deleted_at (as text), owner


class CachedRecord:
    """The columns of a SandboxRecord that reads need, decoded once."""

    __slots__ = (
        "created_at",
        "crm_id",
        "deleted_at",
        "memo",
        "object_name",
        "owner_id",
        "pk",
        "stamp",
        "updated_at",
        "values",
    )

    def __init__(self, object_name: str, row: tuple) -> None:
        (
            self.pk,
            self.crm_id,
            self.values,
            self.created_at,
            self.updated_at,
            self.deleted_at,
            self.owner_id,
            updated_text,
            deleted_text,
        ) = row
        self.object_name: str = object_name
        self.values: dict[str, Any]
        self.created_at: datetime
        self.updated_at: datetime
        self.deleted_at: datetime | None
        self.stamp: Stamp = (updated_text, deleted_text, self.owner_id)
        # Values derived from this record by a reader (HubSpot's computed properties),
        # keyed by what else they depend on; filled lazily, dropped with the record.
        self.memo: tuple[object, dict[str, Any]] | None = None


class Snapshot:
    """The records of one object as of one check, and what readers built from them."""

    def __init__(self, records: dict[int, CachedRecord], signature: object) -> None:
        self.by_pk = records
        # The stamp query's answer these records were read against (raw_query.signature):
        # when the next answer is equal, nothing changed and one comparison is all the
        # check costs. _UNCHECKED, equal to no answer, when they were not read against one.
        self.signature = signature
        ordered = sorted(records.values(), key=lambda record: record.pk)
        self.live = tuple(record for record in ordered if record.deleted_at is None)
        # Live records first, then deleted ones by deletion time: the order in which the
        # database's (account, object_name, deleted_at) index hands out an unfiltered scan.
        deleted = sorted(
            (record for record in ordered if record.deleted_at is not None),
            key=lambda record: (record.deleted_at, record.pk),
        )
        self.everything = self.live + tuple(deleted)
        self._derived: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """What ``build`` makes of these records, kept while they stay unchanged (treat it
        as read-only: concurrent requests share it). The least recently used goes first
        when keys keep changing."""
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]
        value = build()
        with self._lock:
            self._derived[key] = value
            while len(self._derived) > _DERIVED_PER_SNAPSHOT:
                self._derived.popitem(last=False)
        return value


_COLUMNS = (
    "pk",
    "crm_id",
    "values",
    "created_at",
    "updated_at",
    "deleted_at",
    "owner_id",
)


def _stamp_columns() -> tuple:
    # Timestamps as the database's text: no datetime parsing, and an exact comparison.
    return (Cast("updated_at", CharField()), Cast("deleted_at", CharField()))


# The stamp queries select named columns, which raw_query.signature joins on SQLite.
_STAMPS = ("stamp_pk", "stamp_updated", "stamp_deleted", "stamp_owner")
_STAMP_TYPES = (int, str, str, int)
_ID_STAMPS = ("stamp_pk", "stamp_object", "stamp_updated", "stamp_deleted", "stamp_owner")
_ID_STAMP_TYPES = (int, str, str, str, int)


def _stamped(records: QuerySet) -> QuerySet:
    updated, deleted = _stamp_columns()
    return records.order_by().annotate(
        stamp_pk=F("pk"),
        stamp_object=F("object_name"),
        stamp_updated=updated,
        stamp_deleted=deleted,
        stamp_owner=F("owner_id"),
    )


def _object_stamps(alias: str, account_id: int, object_name: str) -> QuerySet:
    records = SandboxRecord.objects.using(alias).filter(
        account_id=account_id, object_name=object_name
    )
    return _stamped(records).values_list(*_STAMPS)


def _id_stamps(alias: str, account_id: int, crm_ids: list[str]) -> QuerySet:
    records = SandboxRecord.objects.using(alias).filter(account_id=account_id, crm_id__in=crm_ids)
    return _stamped(records).values_list(*_ID_STAMPS)


class RecordCache:
    def __init__(self, max_objects: int = MAX_OBJECTS) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, Snapshot] = OrderedDict()
        self._max_objects = max_objects

    def snapshot(self, account_id: int, object_name: str) -> Snapshot:
        """The object's records as the database holds them now."""
        return self._current(account_id, object_name)

    def records(
        self, account_id: int, object_name: str, *, include_deleted: bool = False
    ) -> tuple[CachedRecord, ...]:
        """The object's records as the database holds them now (live ones in pk order)."""
        entry = self._current(account_id, object_name)
        return entry.everything if include_deleted else entry.live

    def by_ids(self, account_id: int, crm_ids: Sequence[str]) -> list[CachedRecord]:
        """The account's records with these ids, of any object, deleted or not, in pk order.

        One query by the (account, crm_id) index reads their stamps; a record whose cached
        copy has the same stamp is answered from the cache, the others are read in full.
        """
        if not crm_ids:
            return []
        alias = SandboxRecord.objects.db
        database = connections[alias].settings_dict["NAME"]
        joined = raw_query.signature(alias, _id_stamps, _ID_STAMPS, account_id, list(crm_ids))
        # Sorted here: ORDER BY pk makes SQLite walk the whole account in pk order rather
        # than look the ids up.
        stamps = sorted(raw_query.rows_of(joined, _ID_STAMP_TYPES))
        with self._lock:
            entries = {
                object_name: self._entries.get((alias, database, account_id, object_name))
                for object_name in {row[1] for row in stamps}
            }
        found: dict[int, CachedRecord] = {}
        for pk, object_name, updated, deleted, owner in stamps:
            entry = entries[object_name]
            cached = entry.by_pk.get(pk) if entry is not None else None
            if cached is not None and cached.stamp == (updated, deleted, owner):
                found[pk] = cached
        missing = [row[0] for row in stamps if row[0] not in found]
        for start in range(0, len(missing), _CHUNK):
            chunk = SandboxRecord.objects.using(alias).filter(
                pk__in=missing[start : start + _CHUNK]
            )
            for row in chunk.order_by().values_list("object_name", *_COLUMNS, *_stamp_columns()):
                found[row[1]] = CachedRecord(row[0], row[1:])
        # A record deleted for good between the two queries is left out, as if read after.
        return [found[row[0]] for row in stamps if row[0] in found]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _current(self, account_id: int, object_name: str) -> Snapshot:
        alias = SandboxRecord.objects.db
        key = (alias, connections[alias].settings_dict["NAME"], account_id, object_name)
        with self._lock:
            entry = self._entries.get(key)
        signature = raw_query.signature(alias, _object_stamps, _STAMPS, account_id, object_name)
        if entry is not None and entry.signature == signature:
            return entry
        stamps = raw_query.rows_of(signature, _STAMP_TYPES)
        scope = SandboxRecord.objects.using(alias).filter(
            account_id=account_id, object_name=object_name
        )
        entry = self._refreshed(object_name, scope, entry, stamps, signature)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_objects:
                self._entries.popitem(last=False)
        return entry

    def _refreshed(
        self,
        object_name: str,
        scope: Any,
        entry: Snapshot | None,
        stamps: list[tuple],
        signature: object,
    ) -> Snapshot:
        wanted: dict[int, Stamp] = {
            pk: (updated, deleted, owner) for pk, updated, deleted, owner in stamps
        }
        known = entry.by_pk if entry is not None else {}
        kept = {
            pk: record
            for pk, record in known.items()
            if pk in wanted and record.stamp == wanted[pk]
        }
        missing = [pk for pk in wanted if pk not in kept]
        if len(missing) >= _REREAD_ALL_FROM:
            rows: Iterable[tuple] = self._read(scope)
        else:
            rows = (
                row
                for start in range(0, len(missing), _CHUNK)
                for row in self._read(scope.filter(pk__in=missing[start : start + _CHUNK]))
            )
        fresh = {row[0]: CachedRecord(object_name, row) for row in rows}
        # A record written between the stamp query and this read comes back newer than its
        # stamp there: keep it (it is the current value), but make the next call compare
        # record by record instead of trusting this call's stamp list.
        agrees = all(wanted.get(pk) == record.stamp for pk, record in fresh.items())
        records = {**kept, **{pk: fresh[pk] for pk in wanted if pk in fresh}}
        consistent = agrees and len(records) == len(wanted)
        return Snapshot(records, signature if consistent else _UNCHECKED)

    @staticmethod
    def _read(queryset: Any) -> list[tuple]:
        return list(queryset.order_by().values_list(*_COLUMNS, *_stamp_columns()))


CACHE = RecordCache()
