"""Nothing accepted is lost, stuck, written twice or written over newer data, whatever the
workers, the broker and the CRMs do (DESIGN.md invariants 3, 4 and 9; issue 13).

Runs on real processes: PostgreSQL (this test's database, committed), Redis, gunicorn, the
runs and apply workers and beat as the Procfile starts them, and the sandbox serving both
CRMs with injected faults. `make chaos` runs it; `make test` leaves it out. It skips
without PostgreSQL or Redis, except in CI (CI=true), where it fails instead.
"""

import os
import time
from urllib.parse import quote

import pytest
import redis
from django.core.cache import cache
from django.db import connection

from tests.chaos.checks import check
from tests.chaos.scenario import Chaos, ChaosConfig, Harness
from tests.chaos.world import build_world, point_settings_at

pytestmark = pytest.mark.chaos

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
BUDGET_SECONDS = 300


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the chaos test must run in CI: {reason}")
    pytest.skip(reason)


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials + '@' if credentials else ''}{host}/{db['NAME']}"


@pytest.fixture
def chaos_database(transactional_db) -> str:
    if connection.vendor != "postgresql":
        _unavailable(
            "needs PostgreSQL: set DATABASE_URL=postgres://… (SQLite is not shared safely)"
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis is unreachable at {REDIS_URL} ({exc}); set TEST_REDIS_URL")
    cache.clear()
    return _database_url()


def test_nothing_accepted_is_lost_stuck_or_written_twice(chaos_database, settings):
    started = time.monotonic()
    config = ChaosConfig()
    with Harness(config, chaos_database, REDIS_URL) as harness:
        try:
            point_settings_at(settings, harness.start_sandbox())
            world = build_world(config.calls, harness.sandbox_url)
            harness.start_product(world)
            chaos = Chaos(config, harness, world, started)
            chaos.log(f"world built and processes up in {time.monotonic() - started:.0f} s")
            chaos.run()
            report = check(world, chaos.accepted)
            print(chaos.summary(report))
        except BaseException:
            print(harness.procs.logs())
            raise
        if not report.ok or chaos.missed:
            print(harness.procs.logs())
    took = time.monotonic() - started
    print(f"chaos test took {took:.0f} s")

    assert not chaos.missed, f"chaos steps that missed their moment: {chaos.missed}"
    assert report.ok, "\n" + report.describe_violations()
    assert took < BUDGET_SECONDS
