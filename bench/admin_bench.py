"""The RevOps admin at scale: the review queue and the audit trail, pages and SQL queries.

Seeds a fresh SQLite database (or DATABASE_URL) with CHANGE_SETS change sets (1 to 5
proposals each, denormalised columns filled as the pipeline fills them, created over 90
days) and EVENTS audit events, 70 % of both in one big workspace and the rest spread over
three others. Then, with Django's test Client logged in as a RevOps member of the big
workspace and as a superuser, it requests each admin page REQUESTS times and reports the
median and p95 time and the SQL queries per request. Target: under 20 queries and 300 ms
median per page.

Audit events are inserted with raw SQL (COPY on PostgreSQL), past the append-only guard and
``record_event``, so that a million of them take seconds. Their hash fields are plausible
64-character digests, not a valid chain: ``audit_verify`` would reject this database, which
does not change what the pages cost.

    .venv/bin/python bench/admin_bench.py [--change-sets 100000] [--events 1000000]
        [--requests 30]
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAYS = 90
BIG_SHARE = 0.7  # of rows in the big workspace; the rest is split over the others
WORKSPACES = ("big-co", "mid-co", "small-co", "tiny-co")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WORKFLOWS = ("Deal hygiene", "Next steps", "Close dates", "Contact roles", "Lead intake")
FIELDS = ("amount", "close_date", "next_step", "stage", "phone", "job_title", "industry")
SET_STATUSES = (  # roughly what a busy queue holds
    ("applied", 45),
    ("pending_review", 20),
    ("rejected", 10),
    ("partial", 5),
    ("conflict", 4),
    ("dry_run", 6),
    ("needs_choice", 3),
    ("superseded", 4),
    ("nothing", 2),
    ("failed", 1),
)
ACTIONS = (  # action, outcome, weight
    ("crm.read", "ok", 40),
    ("crm.search", "ok", 15),
    ("crm.write", "ok", 20),
    ("crm.write.denied", "denied", 4),
    ("crm.write", "failed", 2),
    ("crm.write", "dry_run", 5),
    ("review.approved", "ok", 8),
    ("review.rejected", "ok", 3),
    ("rollback.applied", "ok", 2),
    ("policy.changed", "ok", 1),
)


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)


def _weighted(rng: random.Random, table: tuple) -> tuple:
    return rng.choices(table, weights=[row[-1] for row in table])[0]


def _split(total: int, workspaces: list) -> list[tuple[object, int]]:
    big = int(total * BIG_SHARE)
    rest = total - big
    others = workspaces[1:]
    shares = [big] + [rest // len(others)] * len(others)
    shares[-1] += total - sum(shares)
    return list(zip(workspaces, shares, strict=True))


def _seed_people(workspace):
    from django.contrib.auth import get_user_model

    from governance.models import Membership, Role

    users = get_user_model().objects
    revops = users.create_user("robin@big.example", password="x", is_staff=True)
    Membership.objects.create(workspace=workspace, user=revops, role=Role.REVOPS)
    superuser = users.create_superuser("root@steward.example", password="x")
    return revops, superuser


def _seed_change_sets(workspaces: list, total: int, rng: random.Random) -> None:
    from governance.review_models import ChangeProposal, ChangeSet

    created_at = ChangeSet._meta.get_field("created_at")
    proposal_created_at = ChangeProposal._meta.get_field("created_at")
    # auto_now_add would stamp every row "now"; the bench spreads them over 90 days.
    created_at.auto_now_add = proposal_created_at.auto_now_add = False
    try:
        for workspace, count in _split(total, workspaces):
            for start in range(0, count, 5000):
                batch = [_change_set(workspace, rng) for _ in range(min(5000, count - start))]
                ChangeSet.objects.bulk_create(batch)
                proposals = [
                    _proposal(change_set, rng)
                    for change_set in batch
                    for _ in range(change_set.field_count)
                ]
                ChangeProposal.objects.bulk_create(proposals, batch_size=5000)
    finally:
        created_at.auto_now_add = proposal_created_at.auto_now_add = True


def _change_set(workspace, rng: random.Random):
    from governance.review_models import ChangeSet

    provider = rng.choice(("hubspot", "salesforce"))
    object_type = rng.choices(("deal", "contact", "company"), weights=(6, 3, 1))[0]
    status = _weighted(rng, SET_STATUSES)[0]
    created = NOW - timedelta(seconds=rng.uniform(0, DAYS * 86400))
    number = rng.randrange(100_000, 999_999)
    company = f"{rng.choice(('Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli'))} {number % 997}"
    decided = status not in {"pending_review", "needs_choice", "dry_run", "nothing"}
    return ChangeSet(
        workspace=workspace,
        provider=provider,
        object_type=object_type,
        record_id=str(number) if provider == "hubspot" else f"006{number:012d}",
        record_name=f"{company} {'Platform' if object_type == 'deal' else 'HQ'}",
        call_title=f"{rng.choice(('Discovery', 'Demo', 'Pricing', 'QBR'))} call with {company}",
        call_started_at=created - timedelta(minutes=rng.randrange(5, 120)),
        workflow_label=rng.choice(WORKFLOWS),
        owner_email=f"rep{rng.randrange(40)}@{workspace.slug}.example",
        is_test=status == "dry_run",
        status=status,
        read_at=created,
        field_count=rng.randint(1, 5),
        lowest_confidence=round(rng.uniform(0.35, 0.99), 2),
        decided_at=created + timedelta(hours=rng.randrange(1, 48)) if decided else None,
        applied_at=created + timedelta(hours=49) if status in {"applied", "partial"} else None,
        created_at=created,
    )


def _proposal(change_set, rng: random.Random):
    from governance.review_models import ChangeProposal

    field = rng.choice(FIELDS)
    return ChangeProposal(
        workspace_id=change_set.workspace_id,
        change_set=change_set,
        field=field,
        native_field=field,
        label=field.replace("_", " ").title(),
        write_mode="overwrite",
        review_mode="review",
        raw_value=f"value {rng.randrange(1000)}",
        proposed_value=f"value {rng.randrange(1000)}",
        current_value=f"value {rng.randrange(1000)}",
        evidence=f"…we agreed the {field.replace('_', ' ')} would be updated after the call…",
        evidence_start=round(rng.uniform(10, 3000), 1),
        confidence=round(rng.uniform(change_set.lowest_confidence or 0.35, 1), 2),
        status="applied" if change_set.status == "applied" else "pending",
        created_at=change_set.created_at,
    )


def _event_rows(
    workspace, count: int, rng: random.Random, adapt_time: Callable[[datetime], object]
) -> Iterator[tuple]:
    """Rows in the column order of ``_event_columns()``, oldest first, as strings for JSON."""
    step = DAYS * 86400 / count
    start = NOW - timedelta(days=DAYS)
    previous = "0" * 64
    for sequence in range(1, count + 1):
        action, outcome, _ = _weighted(rng, ACTIONS)
        provider = "hubspot" if sequence % 3 else "salesforce"
        field = rng.choice(FIELDS) if action.startswith(("crm.write", "rollback")) else ""
        digest = hashlib.sha256(f"{workspace.pk}:{sequence}:{previous}".encode()).hexdigest()
        yield (
            workspace.pk,
            sequence,
            adapt_time(start + timedelta(seconds=sequence * step)),
            "user" if action.startswith(("review", "policy")) else "agent",
            "robin@big.example" if action.startswith("review") else "agent",
            action,
            outcome,
            provider,
            "deal",
            str(rng.randrange(100_000, 999_999)),
            field,
            json.dumps(f"old {sequence % 97}") if field else "null",
            json.dumps(f"new {sequence % 89}") if field else "null",
            f"{provider} connection ({workspace.slug})",
            "write" if action.startswith("crm.write") else "read",
            rng.choice(WORKFLOWS),
            f"Call {sequence // 7}",
            f"Run {sequence // 5}",
            "policy: field not writable" if outcome == "denied" else "",
            json.dumps({"latency_ms": rng.randrange(40, 900)}),
            previous,
            digest,
        )
        previous = digest


def _event_columns() -> tuple[str, ...]:
    from audit.models import AuditEvent

    return (*AuditEvent.HASHED_FIELDS, "hash")


def _seed_events(workspaces: list, total: int, rng: random.Random) -> None:
    from django.db import connection, transaction

    from audit.models import AuditEvent

    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    columns = ", ".join(_event_columns())
    with transaction.atomic(), connection.cursor() as cursor:
        for workspace, count in _split(total, workspaces):
            if connection.vendor == "postgresql":
                rows = _event_rows(workspace, count, rng, lambda at: at)
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                continue
            # Stored as Django stores them (UTC, no offset), so date lookups behave the same.
            rows = _event_rows(workspace, count, rng, connection.ops.adapt_datetimefield_value)
            marks = ", ".join(["%s"] * len(_event_columns()))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            while batch := [row for _, row in zip(range(50_000), rows, strict=False)]:
                cursor.executemany(sql, batch)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _measure(client, url: str | Callable[[int], str], requests: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get(i: int) -> tuple[float, int]:
        path = url(i) if callable(url) else url
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code} {response.get('Location')}")
        return elapsed, len(queries)

    for i in range(2):  # warm the caches the first request fills
        get(i)
    samples = [get(i) for i in range(requests)]
    times = [elapsed for elapsed, _ in samples]
    return (
        statistics.median(times) * 1000,
        _percentile(times, 0.95) * 1000,
        max(count for _, count in samples),
    )


def _pages(big) -> list[tuple[str, str | Callable[[int], str]]]:
    from django.urls import reverse

    from audit.models import AuditEvent
    from governance.review_models import ChangeSet

    sets = reverse("admin:governance_changeset_changelist")
    events = reverse("admin:audit_auditevent_changelist")
    set_ids = list(
        ChangeSet.objects.filter(workspace=big).order_by("?").values_list("pk", flat=True)[:50]
    )
    event_ids = list(
        AuditEvent.objects.filter(workspace=big, sequence__in=range(1000, 600_000, 12_000))
        .order_by()
        .values_list("pk", flat=True)
    )
    day = (NOW - timedelta(days=30)).date()
    page = max(1, min(50, ChangeSet.objects.filter(workspace=big).count() // 100))
    return [
        ("change sets: list", sets),
        ("change sets: status = pending", f"{sets}?status__exact=pending_review"),
        ("change sets: search call title", f"{sets}?q=Pricing+call+with+Hooli"),
        (f"change sets: page {page}", f"{sets}?p={page}"),
        (
            "change set: change page",
            lambda i: reverse(_change("governance_changeset"), args=[set_ids[i % len(set_ids)]]),
        ),
        ("audit events: list", events),
        ("audit events: action = crm.write", f"{events}?action__exact=crm.write"),
        ("audit events: month drill", f"{events}?at__year={day.year}&at__month={day.month}"),
        (
            "audit events: day drill",
            f"{events}?at__year={day.year}&at__month={day.month}&at__day={day.day}",
        ),
        (
            "audit event: change page",
            lambda i: reverse(_change("audit_auditevent"), args=[event_ids[i % len(event_ids)]]),
        ),
    ]


def _change(model: str) -> str:
    return f"admin:{model}_change"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change-sets", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="admin-bench-")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.sqlite3"
    _setup_django(database_url)
    from django.db import connection
    from django.test import Client

    from governance.models import Workspace

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = OFF")  # a throwaway database
    rng = random.Random(7)
    workspaces = [Workspace.objects.create(name=slug.title(), slug=slug) for slug in WORKSPACES]
    revops, superuser = _seed_people(workspaces[0])

    started = time.perf_counter()
    _seed_change_sets(workspaces, args.change_sets, rng)
    seeded_sets = time.perf_counter() - started
    _seed_events(workspaces, args.events, rng)
    seeded = time.perf_counter() - started
    with connection.cursor() as cursor:
        # What autovacuum would have done by now: statistics, and on PostgreSQL the
        # visibility map that lets counts read the index alone.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(
        f"seeded {args.change_sets} change sets in {seeded_sets:.0f} s and {args.events} audit"
        f" events in {seeded - seeded_sets:.0f} s ({connection.vendor});"
        f" {args.requests} requests per page"
    )

    pages = _pages(workspaces[0])
    print(f"{'page':<36} {'user':<10} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for user, name in ((revops, "revops"), (superuser, "superuser")):
        client = Client()
        client.force_login(user)
        for label, url in pages:
            median, p95, queries = _measure(client, url, args.requests)
            flag = "" if median < 300 and queries < 20 else "  <- over target"
            print(f"{label:<36} {name:<10} {median:8.1f} {p95:8.1f} {queries:8d}{flag}")


if __name__ == "__main__":
    main()
