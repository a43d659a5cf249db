"""How owed work explains itself when it gives up: the limit in the unit a person reads."""

from datetime import UTC, datetime

import pytest

from governance import owed


@pytest.mark.parametrize(
    ("limit", "said"),
    [(86_400, "24 h"), (5_400, "1.5 h"), (600, "10 min"), (90, "1.5 min"), (45, "45 s")],
)
def test_the_outage_limit_is_said_in_hours_minutes_or_seconds(settings, limit, said):
    settings.CRM_OUTAGE_LIMIT_SECONDS = limit
    since = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)

    reason = owed.gave_up_reason("the CRM", "HTTP 503", since)

    assert reason == (
        f"gave up: the CRM kept failing since 2026-12-07 09:30 UTC (the limit is {said}); "
        "last error: HTTP 503"
    )
