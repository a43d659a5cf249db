"""The chaos test at scale: hundreds of calls through the production process set under
injected faults, with the same checks and counts, plus throughput and auto-apply delay.

A fresh PostgreSQL database (dropped and created each run) and a Redis database of its own;
the sandbox serving both CRMs, gunicorn, the runs and apply workers and beat as the
Procfile starts them. Nine calls in ten are submitted through the API at once, so runs
queue up (two per call, one per CRM); while they drain, the CRMs answer with 5xx,
timeouts, dropped connections and a rate-limit window, the runs worker's pool is SIGKILLed
mid-run, the broker's queues are emptied once, the apply worker is SIGKILLed mid-apply,
and reviewers approve through the API (a colleague edits some deals first). Once the runs
have drained, the last tenth of the calls arrives and the CRMs fail completely for a
while; then the reconciler settles everything.

It prints the chaos test's counts, calls per minute (the first nine tenths, from submitted
to all their runs finished) and the auto-apply delay (proposal created -> written, for
the fields the policy applies at once) at p50 / p95, over all such proposals and over those
created while at least 200 runs were queued (target: p95 under 10 s).

    .venv/bin/python bench/chaos_bench.py [--calls 300] [--error-rate 0.05] [--calm] ...
"""

import argparse
import os
import statistics
import sys
import time
from bisect import bisect_right
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

DATABASE = "crm_steward_chaos_bench"
BACKLOG = 200


def _fresh_database(server_url: str, name: str) -> str:
    """Drop and create the database ``name`` on the server ``server_url`` names."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(parts._replace(path=f"/{name}"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _delays(world, chaos) -> tuple[list[float], list[float]]:
    """Auto-apply delays in seconds: all, and those created under a backlog >= BACKLOG."""
    from governance.review_models import ChangeProposal

    moments = [when for when, _ in chaos.backlog]
    every, loaded = [], []
    applied = ChangeProposal.objects.filter(
        workspace=world.workspace, review_mode="auto", status="applied", applied_at__isnull=False
    ).values_list("created_at", "applied_at")
    for created, applied_at in applied:
        delay = (applied_at - created).total_seconds()
        every.append(delay)
        index = bisect_right(moments, created) - 1
        if index >= 0 and chaos.backlog[index][1] >= BACKLOG:
            loaded.append(delay)
    return every, loaded


def _spread(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    return (
        f"p50 {statistics.median(samples):.1f} s, p95 {_percentile(samples, 0.95):.1f} s, "
        f"max {max(samples):.1f} s ({len(samples)} proposals)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--error-rate", type=float, default=0.05, help="5xx, 0..1")
    parser.add_argument("--timeout-rate", type=float, default=0.03)
    parser.add_argument("--drop-rate", type=float, default=0.05, help="dropped connections")
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--rate-limit-seconds", type=float, default=5.0)
    parser.add_argument(
        "--calm",
        action="store_true",
        help="no faults, kills, broker blip, rate limits or outage: the work alone",
    )
    parser.add_argument(
        "--requeue-after",
        type=int,
        default=60,
        help="REQUEUE_AFTER_SECONDS: owed work older than this is sent again (the chaos "
        "test uses 10; below the backlog's wait it floods the queues with resends)",
    )
    parser.add_argument("--runs-concurrency", type=int, default=2)
    parser.add_argument("--apply-concurrency", type=int, default=2)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CHAOS_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"),
        help="the PostgreSQL server (its database name is ignored)",
    )
    parser.add_argument(
        "--database", default=DATABASE, help="dropped and created afresh on that server"
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CHAOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()

    started = time.monotonic()
    os.environ["DATABASE_URL"] = _fresh_database(args.postgres, args.database)
    database_url = setup_django("chaos-bench", eager=True, quiet_http=True)
    from django.conf import settings

    from tests.chaos.checks import check
    from tests.chaos.scenario import Chaos, ChaosConfig, Harness
    from tests.chaos.world import build_world, point_settings_at

    if args.calm:
        args.error_rate = args.timeout_rate = args.drop_rate = args.latency_ms = 0
        args.outage_seconds = args.rate_limit_seconds = 0
    config = ChaosConfig(
        calls=args.calls,
        kills_and_blips=not args.calm,
        error_rate=args.error_rate,
        timeout_rate=args.timeout_rate,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        outage_seconds=args.outage_seconds,
        rate_limit_seconds=args.rate_limit_seconds,
        runs_concurrency=args.runs_concurrency,
        apply_concurrency=args.apply_concurrency,
        settle_timeout=args.settle_timeout,
        first_batch=0.9,
        drain_before_outage=True,
        step_timeout=60.0,
    )
    config.product["REQUEUE_AFTER_SECONDS"] = str(args.requeue_after)
    # The backlog drains for many minutes: a run that failed once must not count that wait
    # as an outage (the test's 600 s limit would give it up).
    config.product["CRM_OUTAGE_LIMIT_SECONDS"] = "3600"
    with Harness(config, database_url, args.redis_url) as harness:
        try:
            point_settings_at(settings, harness.start_sandbox())
            world = build_world(config.calls, harness.sandbox_url)
            harness.start_product(world)
            chaos = Chaos(config, harness, world, started)
            chaos.log(
                f"world of {config.calls} deals per CRM built, processes up; runs x"
                f"{config.runs_concurrency}, apply x{config.apply_concurrency}, "
                f"REQUEUE_AFTER_SECONDS={args.requeue_after}"
                + (", calm (no faults)" if args.calm else "")
            )
            submitted = chaos.elapsed()
            chaos.run()
            report = check(world, chaos.accepted)
        except BaseException:
            print(harness.procs.logs())
            raise
        if not report.ok:
            print(harness.procs.logs(40))
    drained = chaos.phase_marks.get("runs drained", chaos.elapsed())
    every, loaded = _delays(world, chaos)
    print()
    print(chaos.summary(report))
    counted = chaos.drained_calls or config.calls
    print(
        f"throughput: {counted / (drained - submitted) * 60:.0f} calls/min "
        f"({counted} calls, {2 * counted} runs, submitted to drained in "
        f"{drained - submitted:.0f} s)"
    )
    print(f"largest backlog: {max((n for _, n in chaos.backlog), default=0)} runs queued")
    print(f"auto-apply delay, all: {_spread(every)}")
    print(f"auto-apply delay, with >= {BACKLOG} runs queued: {_spread(loaded)}")
    if chaos.missed:
        print(f"chaos steps that missed their moment: {chaos.missed}")
    if not report.ok:
        print("\nVIOLATIONS\n" + report.describe_violations())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
