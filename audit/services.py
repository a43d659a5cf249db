"""Appending to a workspace's audit chain, and checking that the chain is intact.

Callers pass no credentials: tokens, API keys and passwords never belong in an audit event
(DESIGN.md invariant 8). As a safety net, values under credential-like keys
(``SECRET_KEYS``) anywhere in ``before``, ``after`` or ``context`` are replaced by
``REDACTED`` before anything is stored.
"""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from audit.models import (
    GENESIS_HASH,
    ActorKind,
    AuditEvent,
    AuditHead,
    Outcome,
    UnknownAuditKey,
    audit_keys,
)
from governance.models import Workspace
from integrations.models import ConnectionScope

SECRET_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "client_secret",
        "credentials",
        "id_token",
        "password",
        "private_app_token",
        "refresh_token",
        "secret",
        "session_id",
        "token",
    }
)
REDACTED = "[redacted]"
_EXACT_INT_LIMIT = 2**53
_BATCH = 2000


@dataclass
class ChainCheck:
    """What ``check_chain`` found in one workspace's chain."""

    problems: list[str] = field(default_factory=list)
    events: int = 0
    key_ids: Counter[str] = field(default_factory=Counter)  # events per key id, oldest first


class ChainNotVerified(Exception):
    """The chain has problems, so re-signing it would hide them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the audit chain")
        self.problems = problems


class _AuditJSONEncoder(DjangoJSONEncoder):
    """Datetimes, dates, Decimals, UUIDs and lazy strings become strings; sets sorted lists."""

    def default(self, o: object) -> object:
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        return super().default(o)


def record_event(
    workspace: Workspace,
    *,
    action: str,
    outcome: str,
    actor_kind: str = ActorKind.AGENT,
    actor_user=None,
    crm: str = "",
    object_type: str = "",
    record_id: str = "",
    field: str = "",
    before: object = None,
    after: object = None,
    connection=None,
    scope: str = "",
    reason: str = "",
    context: dict | None = None,
    workflow_label: str = "",
    call_label: str = "",
    run_label: str = "",
) -> AuditEvent:
    """Append one event to ``workspace``'s chain and return it.

    Runs in the caller's transaction when there is one (so an event and the change it
    records commit together), and holds the workspace's chain lock until that transaction
    ends: keep such transactions short. ``crm``, ``scope`` and ``connection_label`` default
    to the connection's; ``actor_label`` to the user's name or the actor kind.
    """
    if actor_kind not in ActorKind.values:
        raise ValueError(f"Unknown actor kind {actor_kind!r}; use one of {ActorKind.values}.")
    if outcome not in Outcome.values:
        raise ValueError(f"Unknown audit outcome {outcome!r}; use one of {Outcome.values}.")
    if connection is not None and connection.workspace_id != workspace.pk:
        raise ValueError(f"{connection} does not belong to workspace {workspace.slug}.")
    scope = scope or (connection.scope if connection is not None else "")
    if scope and scope not in ConnectionScope.values:
        raise ValueError(f"Unknown scope {scope!r}; use one of {ConnectionScope.values}.")

    event = AuditEvent(
        workspace=workspace,
        actor_kind=actor_kind,
        actor_user=actor_user,
        actor_label=_clip(actor_user.get_username() if actor_user else actor_kind, 200),
        action=action,
        outcome=outcome,
        crm=crm or (connection.provider if connection is not None else ""),
        object_type=object_type,
        record_id=str(record_id),
        field=field,
        before=_json_value(before, "before"),
        after=_json_value(after, "after"),
        connection=connection,
        connection_label=_clip(str(connection) if connection is not None else "", 300),
        scope=scope,
        workflow_label=_clip(workflow_label, 300),
        call_label=_clip(call_label, 300),
        run_label=_clip(run_label, 300),
        reason=reason,
        context=_json_value(context or {}, "context"),
    )
    with transaction.atomic():
        # One appender per workspace at a time. FOR NO KEY UPDATE does not block inserts
        # of other rows referencing the workspace (they take FOR KEY SHARE). SQLite has no
        # row locks; its IMMEDIATE transactions already serialise writers.
        Workspace.objects.select_for_update(no_key=True).only("pk").get(pk=workspace.pk)
        # Chain onto the head, not onto the newest row left: after someone deletes the
        # newest events, the next one then still shows the gap they left.
        head = AuditHead.objects.filter(workspace=workspace).first()
        newest = _newest(workspace) if head is None else (head.sequence, head.hash)
        event.sequence = newest[0] + 1
        event.previous_hash = newest[1]
        event.at = timezone.now()
        event.sign()
        event.save(force_insert=True)
        if head is None:
            AuditHead.objects.create(
                workspace=workspace, sequence=event.sequence, hash=event.hash, updated_at=event.at
            )
        else:
            AuditHead.objects.filter(pk=head.pk).update(
                sequence=event.sequence, hash=event.hash, updated_at=event.at
            )
    return event


def verify_chain(workspace: Workspace) -> list[str]:
    """Every problem in ``workspace``'s chain, in sequence order; empty when it is intact."""
    return check_chain(workspace).problems


def check_chain(workspace: Workspace) -> ChainCheck:
    """Check every event's hash under the key its ``key_id`` names, every link, and the head.

    Finds an edited event (its hash no longer matches its content under its key), a chain
    recomputed without the key, a deleted event (a gap in the sequence and a broken
    previous_hash link), an event signed by a key AUDIT_KEYS no longer lists, and the newest
    events deleted (the chain ends before the workspace's ``AuditHead``). It cannot see the
    newest events cut and the head moved back to the last one kept: compare the head with
    one exported earlier (``audit_verify --print-head``) for that.
    """
    check = ChainCheck()
    problems = check.problems
    unknown: dict[str, list] = {}  # key id -> [its problem's index, where, events]
    expected_sequence, expected_previous = 1, GENESIS_HASH
    last: AuditEvent | None = None
    for event in _chain(workspace):
        where = f"{workspace.slug} #{event.sequence}"
        check.events += 1
        check.key_ids[event.key_id] += 1
        if event.sequence != expected_sequence:
            missing = (
                f"#{expected_sequence}"
                if event.sequence == expected_sequence + 1
                else f"#{expected_sequence} to #{event.sequence - 1}"
            )
            problems.append(f"{where}: sequence gap, {missing} missing (deleted?)")
        if event.previous_hash != expected_previous:
            problems.append(f"{where}: previous_hash does not match the preceding event's hash")
        try:
            intact = event.hash == event.compute_hash()
        except UnknownAuditKey:
            if event.key_id in unknown:
                unknown[event.key_id][2] += 1
            else:
                unknown[event.key_id] = [len(problems), where, 1]
                problems.append("")  # written out below, once the count is known
        else:
            if not intact:
                problems.append(
                    f"{where}: hash mismatch, the event was changed after it was written"
                )
        expected_sequence, expected_previous = event.sequence + 1, event.hash
        last = event
    for key_id, (index, where, count) in unknown.items():
        problems[index] = _unknown_key_problem(where, key_id, count)
    problem = _head_problem(workspace, last)
    if problem:
        problems.append(problem)
    return check


def resign_chain(workspace: Workspace) -> int:
    """Re-sign ``workspace``'s chain with the first key of AUDIT_KEYS; the events re-signed.

    For retiring a key: afterwards no event needs the older keys. Only a chain that verifies
    is re-signed (raises ChainNotVerified otherwise: re-signing would hide what is wrong).
    Every event from the first one signed by another key on is re-signed, since each
    event's hash covers the previous one's; the head moves with them, so heads exported
    before no longer match. Holds the workspace's chain lock throughout, as appends do.
    """
    key = audit_keys()[0]
    with transaction.atomic():
        Workspace.objects.select_for_update(no_key=True).only("pk").get(pk=workspace.pk)
        problems = verify_chain(workspace)
        if problems:
            raise ChainNotVerified(problems)
        events = AuditEvent.objects.filter(workspace=workspace)
        first = (
            events.exclude(key_id=key.id)
            .order_by("sequence")
            .values_list("sequence", flat=True)
            .first()
        )
        if first is None:
            return 0
        previous = (
            events.filter(sequence=first - 1).values_list("hash", flat=True).first() or GENESIS_HASH
        )
        table = db.ops.quote_name(AuditEvent._meta.db_table)
        sql = f"UPDATE {table} SET previous_hash = %s, key_id = %s, hash = %s WHERE id = %s"
        resigned, sequence = 0, first - 1
        while batch := list(events.filter(sequence__gt=sequence).order_by("sequence")[:_BATCH]):
            rows = []
            for event in batch:
                event.previous_hash = previous
                event.sign()
                rows.append((event.previous_hash, event.key_id, event.hash, event.pk))
                previous, sequence = event.hash, event.sequence
            # Past the ORM's append-only guard on purpose: this is the one sanctioned rewrite.
            with db.cursor() as cursor:
                cursor.executemany(sql, rows)
            resigned += len(rows)
        AuditHead.objects.filter(workspace=workspace).update(hash=previous)
    return resigned


def chain_head(workspace: Workspace) -> AuditHead | None:
    """The workspace's head, to export and compare later; None before its first event."""
    return AuditHead.objects.filter(workspace=workspace).first()


def _head_problem(workspace: Workspace, last: AuditEvent | None) -> str | None:
    head = chain_head(workspace)
    ends = f"#{last.sequence}" if last else "no event at all"
    if head is None:
        if last is None:
            return None
        return f"{workspace.slug}: no chain head, so deleted newest events cannot be ruled out"
    if last is None or last.sequence < head.sequence:
        return (
            f"{workspace.slug}: the newest events were deleted: the head says "
            f"#{head.sequence}, the chain ends at {ends}"
        )
    if last.sequence > head.sequence:
        return (
            f"{workspace.slug}: the chain ends at {ends}, past the head's #{head.sequence} "
            "(events added without record_event?)"
        )
    if last.hash != head.hash:
        return (
            f"{workspace.slug} #{last.sequence}: hash differs from the head's, "
            "the newest event was replaced"
        )
    return None


def _unknown_key_problem(where: str, key_id: str, count: int) -> str:
    if key_id:
        shown = key_id if key_id.isascii() and key_id.isalnum() else repr(key_id)
        problem = (
            f"{where}: signed with key id {shown}, which AUDIT_KEYS does not list "
            "(was the key removed?), so its hash cannot be checked"
        )
    else:
        problem = (
            f"{where}: no key id, so not signed with an audit key "
            "(written by code from before the keyed chain, or past record_event)"
        )
    return problem if count == 1 else f"{problem}; {count - 1} later event(s) carry it too"


def _newest(workspace: Workspace) -> tuple[int, str]:
    """The newest stored event's sequence and hash, for a chain that has no head yet."""
    newest = (
        AuditEvent.objects.filter(workspace=workspace)
        .order_by("-sequence")
        .values_list("sequence", "hash")
        .first()
    )
    return newest or (0, GENESIS_HASH)


def _chain(workspace: Workspace) -> Iterator[AuditEvent]:
    return (
        AuditEvent.objects.filter(workspace=workspace)
        .order_by("sequence")
        .iterator(chunk_size=2000)
    )


def _json_value(value: object, name: str) -> object:
    """``value`` as it will read back from the database, so its hash can be recomputed."""
    try:
        text = json.dumps(value, cls=_AuditJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"The audit event's {name} must be JSON-serialisable: {exc}") from exc
    return _normalise(json.loads(text))


def _normalise(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: REDACTED if key.lower() in SECRET_KEYS else _normalise(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        # PostgreSQL's jsonb keeps numbers as exact decimals, so 1e300 would read back as
        # a 301-digit integer: store integral floats as values that read back unchanged.
        return int(value) if abs(value) < _EXACT_INT_LIMIT else repr(value)
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
