"""All changes to sandbox CRM state go through here, for both emulators and the seeders.

Every value written leaves a SandboxPropertyChange, so property history and per-field
change times are always there to read back.

Both CRMs serialise writes to one record: concurrent writes to different fields all land,
and a field's history lists its values in the order they were written. The sandbox does the
same by merging every write into the record's row as it is under its row lock
(``lock_record``), never into a copy read earlier in the request.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from integrations.sandbox.models import (
    Access,
    Provider,
    SandboxAccount,
    SandboxAssociation,
    SandboxPropertyChange,
    SandboxRecord,
    SandboxUser,
)

SALESFORCE_KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "User": "005",
    "Organization": "00D",
    "OpportunityStage": "01J",
}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# HubSpot ids are plain numbers; start high enough to look like a real portal's.
HUBSPOT_FIRST_ID = 10_000


class HasPk(Protocol):
    pk: int


def now() -> datetime:
    return timezone.now()


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: prefix, instance, counter and the case checksum."""
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
    body = f"{prefix}5g0{digits.rjust(9, '0')}"
    if len(body) != 15:
        raise ValueError(f"id counter overflow for prefix {prefix}")
    return full_salesforce_id(body)


def full_salesforce_id(record_id: str) -> str:
    """The 18-character form of a 15-character Salesforce id (an 18-character one as is)."""
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for chunk in (record_id[0:5], record_id[5:10], record_id[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += _CHECKSUM[bits]
    return record_id + suffix


@transaction.atomic
def allocate_numbers(account: SandboxAccount, count: int) -> range:
    """Reserve ``count`` consecutive numbers of the account's id counter.

    The UPDATE holds the account row's lock until the transaction ends, and the read after
    it sees this transaction's own increment: concurrent callers never share a number.
    """
    SandboxAccount.objects.filter(pk=account.pk).update(id_counter=F("id_counter") + count)
    top = SandboxAccount.objects.values_list("id_counter", flat=True).get(pk=account.pk)
    account.id_counter = top
    return range(top - count + 1, top + 1)


def new_ids(account: SandboxAccount, object_name: str, count: int = 1) -> list[str]:
    numbers = allocate_numbers(account, count)
    if account.provider == Provider.HUBSPOT:
        return [str(HUBSPOT_FIRST_ID + number) for number in numbers]
    prefix = SALESFORCE_KEY_PREFIXES.get(object_name, "a00")
    return [salesforce_id(prefix, number) for number in numbers]


@transaction.atomic
def create_record(
    account: SandboxAccount,
    object_name: str,
    values: Mapping[str, object],
    *,
    owner: SandboxUser | None = None,
    source_type: str = "API",
    source_id: str = "",
    at: datetime | None = None,
) -> SandboxRecord:
    return bulk_create_records(
        account,
        object_name,
        [(values, owner)],
        source_type=source_type,
        source_id=source_id,
        at=at,
    )[0]


@transaction.atomic
def bulk_create_records(
    account: SandboxAccount,
    object_name: str,
    rows: Sequence[tuple[Mapping[str, object], SandboxUser | None]],
    *,
    source_type: str = "IMPORT",
    source_id: str = "",
    at: datetime | None = None,
) -> list[SandboxRecord]:
    """Create many records in a few queries (seeding, benchmarks)."""
    at = at or now()
    ids = new_ids(account, object_name, len(rows))
    records = SandboxRecord.objects.bulk_create(
        SandboxRecord(
            account=account,
            object_name=object_name,
            crm_id=crm_id,
            owner=owner,
            values={name: value for name, value in values.items() if value is not None},
            created_at=at,
            updated_at=at,
        )
        for crm_id, (values, owner) in zip(ids, rows, strict=True)
    )
    if not all(record.pk for record in records):  # backends that return no ids on bulk insert
        by_id = {r.crm_id: r for r in SandboxRecord.objects.filter(account=account, crm_id__in=ids)}
        records = [by_id[crm_id] for crm_id in ids]
    SandboxPropertyChange.objects.bulk_create(
        SandboxPropertyChange(
            record=record,
            name=name,
            value=value,
            changed_at=at,
            source_type=source_type,
            source_id=source_id,
        )
        for record in records
        for name, value in record.values.items()
    )
    return records


def lock_record(record: SandboxRecord) -> SandboxRecord:
    """Hold ``record``'s row lock until the transaction ends, and reload it from the locked
    row, so what the caller checks and merges is the record as it is now.

    Call it inside a transaction. Where a request writes several records, lock them first
    with ``lock_records``, so two requests naming them in different orders queue instead
    of deadlocking. On SQLite the IMMEDIATE transaction already holds the database's write
    lock, and ``select_for_update`` is a no-op.
    """
    record.refresh_from_db(from_queryset=SandboxRecord.objects.select_for_update(no_key=True))
    return record


def lock_records(account: SandboxAccount, crm_ids: Iterable[str]) -> dict[str, SandboxRecord]:
    """Take the row locks of the account's records with these ids, in one (pk) order; the
    records as they are under the locks, by id (deleted ones too)."""
    wanted = list(dict.fromkeys(crm_ids))
    if not wanted:
        return {}
    locked = (
        SandboxRecord.objects.select_for_update(no_key=True)
        .filter(account=account, crm_id__in=wanted)
        .order_by("pk")
    )
    return {record.crm_id: record for record in locked}


def lock_account(account: SandboxAccount) -> None:
    """Hold the account row's lock until the transaction ends, for a check that must see
    every record of the account (a unique value claimed): two such checks queue, and so do
    creates, which take the same lock in ``allocate_numbers``. Take record locks first."""
    locked = SandboxAccount.objects.select_for_update(no_key=True).filter(pk=account.pk)
    list(locked.values_list("pk", flat=True))


class _Unchanged:
    pass


UNCHANGED = _Unchanged()


@transaction.atomic
def update_record(
    record: SandboxRecord,
    changes: Mapping[str, object],
    *,
    owner: SandboxUser | _Unchanged | None = UNCHANGED,
    source_type: str = "API",
    source_id: str = "",
    at: datetime | None = None,
) -> dict[str, object]:
    """Apply ``changes`` (None clears a value) and, if given, the new ``owner``; returns the
    fields whose value changed. ``record`` is left as written.

    The changes are merged into the record as it is under its row lock, and the time is
    taken under it too, so concurrent writes to other fields survive and history lists a
    field's values in the order they were written. The record's modification time moves on
    every write, as both CRMs do, even when no value actually changed.
    """
    lock_record(record)
    at = at or now()
    changed: dict[str, object] = {}
    for name, value in changes.items():
        if record.values.get(name) == value:
            continue
        changed[name] = value
        if value is None:
            record.values.pop(name, None)
        else:
            record.values[name] = value
    record.updated_at = at
    fields = ["values", "updated_at"]
    if not isinstance(owner, _Unchanged):
        record.owner = owner
        fields.append("owner")
    record.save(update_fields=fields)
    SandboxPropertyChange.objects.bulk_create(
        SandboxPropertyChange(
            record=record,
            name=name,
            value=value,
            changed_at=at,
            source_type=source_type,
            source_id=source_id,
        )
        for name, value in changed.items()
    )
    return changed


def delete_record(record: SandboxRecord, *, at: datetime | None = None) -> None:
    record.deleted_at = at or now()
    record.save(update_fields=["deleted_at"])


def live_records(account: SandboxAccount, object_name: str) -> QuerySet[SandboxRecord]:
    return SandboxRecord.objects.filter(
        account=account, object_name=object_name, deleted_at__isnull=True
    )


_WIDTH = {Access.OWNED: 0, Access.TEAM: 1, Access.ALL: 2}


def read_scope(user: SandboxUser) -> str:
    """Which records the user may see: ``access`` (which they may edit) or, wider, what
    read-only sharing adds (``read_access``)."""
    if user.read_access and _WIDTH[user.read_access] > _WIDTH[user.access]:
        return user.read_access
    return user.access


def _scoped(
    user: SandboxUser, scope: str, queryset: QuerySet[SandboxRecord]
) -> QuerySet[SandboxRecord]:
    if scope == Access.ALL:
        return queryset
    if scope == Access.TEAM and user.team:
        return queryset.filter(
            Q(owner=user) | Q(owner__team=user.team, owner__account=user.account)
        )
    return queryset.filter(owner=user)


def _in_scope(user: SandboxUser, scope: str, record: SandboxRecord) -> bool:
    if scope == Access.ALL or record.owner_id == user.pk:
        return True
    return bool(
        scope == Access.TEAM and user.team and record.owner and record.owner.team == user.team
    )


def visible_to(user: SandboxUser, queryset: QuerySet[SandboxRecord]) -> QuerySet[SandboxRecord]:
    """Records the user may see (Salesforce sharing; the guard mirrors it for HubSpot)."""
    return _scoped(user, read_scope(user), queryset)


def visible_owner_ids(user: SandboxUser) -> set[int] | None:
    """The owners whose records ``visible_to`` keeps (None: every record, owned or not)."""
    scope = read_scope(user)
    if scope == Access.ALL:
        return None
    if scope == Access.TEAM and user.team:
        team = SandboxUser.objects.filter(team=user.team, account=user.account)
        return {user.pk, *team.values_list("pk", flat=True)}
    return {user.pk}


def can_access(user: SandboxUser, record: SandboxRecord) -> bool:
    """Whether the user may see ``record``."""
    return _in_scope(user, read_scope(user), record)


def can_edit(user: SandboxUser, record: SandboxRecord) -> bool:
    """Whether the user may change ``record``: read-only sharing lets them see it only."""
    return _in_scope(user, user.access, record)


def latest_changes(
    records: Iterable[SandboxRecord], names: Iterable[str]
) -> dict[int, dict[str, SandboxPropertyChange]]:
    """For each record, the newest change of each of ``names`` (record pk -> name -> change)."""
    latest: dict[int, dict[str, SandboxPropertyChange]] = {}
    changes = SandboxPropertyChange.objects.filter(
        record__in=list(records), name__in=list(names)
    ).order_by("record_id", "name", "-changed_at", "-pk")
    for change in changes:
        latest.setdefault(change.record_id, {}).setdefault(change.name, change)
    return latest


def history(
    records: Iterable[HasPk], names: Iterable[str]
) -> dict[int, dict[str, list[SandboxPropertyChange]]]:
    """Every change of each of ``names``, newest first (record pk -> name -> changes).

    ``records`` may be model instances or cached records (record_cache.CachedRecord)."""
    result: dict[int, dict[str, list[SandboxPropertyChange]]] = {}
    changes = SandboxPropertyChange.objects.filter(
        record_id__in=[record.pk for record in records], name__in=list(names)
    ).order_by("record_id", "name", "-changed_at", "-pk")
    for change in changes:
        result.setdefault(change.record_id, {}).setdefault(change.name, []).append(change)
    return result


def associate(
    source: SandboxRecord,
    target: SandboxRecord,
    *,
    type_id: int,
    reverse_type_id: int,
    category: str = "HUBSPOT_DEFINED",
    label: str = "",
) -> None:
    """Link two HubSpot records both ways (each direction has its own type id)."""
    for from_record, to_record, kind in (
        (source, target, type_id),
        (target, source, reverse_type_id),
    ):
        SandboxAssociation.objects.get_or_create(
            account=source.account,
            from_record=from_record,
            to_record=to_record,
            type_id=kind,
            defaults={"category": category, "label": label},
        )


def dissociate(source: SandboxRecord, target: SandboxRecord) -> int:
    deleted, _ = SandboxAssociation.objects.filter(
        Q(from_record=source, to_record=target) | Q(from_record=target, to_record=source)
    ).delete()
    return deleted
