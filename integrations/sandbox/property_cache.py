"""The property definitions of a sandbox account, kept decoded between requests.

Every Salesforce call reads all of an org's field definitions (a few hundred, with
describe details as JSON) and every HubSpot call those of one object; decoding them again
per call was a large share of a read by id. This process keeps the model instances and, on
every use, compares each definition's (pk, updated_at) with the database in one narrow
query, re-reading only what changed. Definitions change through ``save()``,
``create()`` and ``bulk_create()``, which all move ``updated_at`` (auto_now).

The instances are shared by concurrent requests: read them, never change them. Code that
changes a definition must load its own instance from the database.
"""

import threading
from collections import OrderedDict
from typing import Any

from django.db import connections
from django.db.models import CharField, QuerySet
from django.db.models.functions import Cast

from integrations.sandbox import raw_query
from integrations.sandbox.models import SandboxProperty

MAX_ACCOUNTS = 32


class _Entry:
    def __init__(
        self, by_pk: dict[int, tuple[str, SandboxProperty]], stamps: list[tuple] | None
    ) -> None:
        self.by_pk = by_pk  # in the model's ordering
        self.stamps = stamps  # the stamp query's answer, when the instances agree with it
        self.properties = [prop for _, prop in by_pk.values()]


class PropertyCache:
    def __init__(self, max_accounts: int = MAX_ACCOUNTS) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._max_accounts = max_accounts

    def properties(self, account_id: int) -> list[SandboxProperty]:
        """The account's definitions in the model's ordering (object, display order, name)."""
        alias = SandboxProperty.objects.db
        key = (alias, connections[alias].settings_dict["NAME"], account_id)
        with self._lock:
            entry = self._entries.get(key)
        # In the model's ordering, which the database applies (its collation, not Python's,
        # decides the order of names).
        stamps = raw_query.rows(alias, _stamps, account_id)
        if entry is None or entry.stamps != stamps:
            scope = SandboxProperty.objects.using(alias).filter(account_id=account_id)
            entry = self._refreshed(scope, entry, stamps)
            with self._lock:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_accounts:
                    self._entries.popitem(last=False)
        return entry.properties

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @staticmethod
    def _refreshed(scope: Any, entry: _Entry | None, stamps: list[tuple]) -> _Entry:
        known = entry.by_pk if entry is not None else {}
        kept = {pk: known[pk] for pk, stamp in stamps if pk in known and known[pk][0] == stamp}
        missing = [pk for pk, _ in stamps if pk not in kept]
        fresh = {
            prop.pk: (prop.stamp, prop)
            for prop in scope.filter(pk__in=missing).annotate(stamp=_stamp())
        }
        wanted = dict(stamps)
        by_pk = {pk: kept.get(pk) or fresh[pk] for pk, _ in stamps if pk in kept or pk in fresh}
        # A definition saved between the two queries comes back newer than its stamp: keep
        # it, but make the next call compare definition by definition.
        consistent = len(by_pk) == len(stamps) and all(
            wanted[pk] == stamp for pk, (stamp, _) in fresh.items()
        )
        return _Entry(by_pk, stamps if consistent else None)


def _stamps(alias: str, account_id: int) -> QuerySet:
    return (
        SandboxProperty.objects.using(alias)
        .filter(account_id=account_id)
        .values_list("pk", _stamp())
    )


def _stamp() -> Cast:
    return Cast("updated_at", CharField())


CACHE = PropertyCache()
