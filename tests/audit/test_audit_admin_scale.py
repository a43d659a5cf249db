"""The audit changelist's filters and date drill-down, answered without reading every event."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from audit import services
from audit.admin import DrillDownQuerySet
from audit.models import AuditEvent
from tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:audit_auditevent_changelist"


@pytest.fixture
def dated_events(workspace, other_workspace, monkeypatch):
    """Events on four days across two years, and one in another workspace."""

    def at(when: datetime, **fields: object) -> AuditEvent:
        monkeypatch.setattr(services.timezone, "now", lambda: when)
        return AuditEventFactory(**fields)

    events = [
        at(datetime(2025, 12, 31, 23, 59, tzinfo=UTC), workspace=workspace, action="crm.read"),
        at(datetime(2026, 2, 3, 8, 0, tzinfo=UTC), workspace=workspace, action="crm.write"),
        at(datetime(2026, 2, 3, 9, 0, tzinfo=UTC), workspace=workspace, action="crm.read"),
        at(datetime(2026, 2, 17, 0, 0, tzinfo=UTC), workspace=workspace, action="policy.changed"),
        at(datetime(2026, 5, 1, 12, 0, tzinfo=UTC), workspace=other_workspace, action="secret.x"),
    ]
    monkeypatch.undo()
    return events


@pytest.mark.parametrize(
    ("kind", "lookups"),
    [
        ("year", {}),
        ("month", {"at__year": 2026}),
        ("day", {"at__year": 2026, "at__month": 2}),
        ("day", {"at__year": 2026, "at__month": 2, "action": "crm.write"}),
        ("day", {"at__year": 2024}),
    ],
)
def test_the_drill_down_finds_the_periods_django_finds(dated_events, kind, lookups):
    events = AuditEvent.objects.filter(workspace=dated_events[0].workspace, **lookups)
    probed = DrillDownQuerySet(events.model, events.query, events.db)

    assert list(probed.datetimes("at", kind)) == list(events.datetimes("at", kind))


def test_the_drill_down_shows_days_in_a_few_queries(
    dated_events, revops, login, django_assert_max_num_queries
):
    client = login(revops)

    with django_assert_max_num_queries(19):
        page = client.get(reverse(CHANGELIST), {"at__year": 2026, "at__month": 2})

    html = page.content.decode()
    assert page.status_code == 200
    assert "at__day=3" in html
    assert "at__day=17" in html
    assert "at__day=4" not in html


def test_the_filters_offer_only_the_users_actions_and_workspaces(dated_events, revops, login):
    page = login(revops).get(reverse(CHANGELIST))

    filters = {spec.title: spec for spec in page.context["cl"].filter_specs}
    assert filters["action"].lookup_choices == ["crm.read", "crm.write", "policy.changed"]
    assert "workspace" not in filters  # one workspace: nothing to choose


def test_superusers_filter_by_every_workspace_and_action(dated_events, superuser, login):
    page = login(superuser).get(reverse(CHANGELIST))

    filters = {spec.title: spec for spec in page.context["cl"].filter_specs}
    assert "secret.x" in filters["action"].lookup_choices
    assert [name for _, name in filters["workspace"].lookup_choices] == [
        "Acme Sales",
        "Globex Sales",
    ]


def test_the_list_counts_without_distinct(dated_events, revops, login):
    page = login(revops).get(reverse(CHANGELIST))

    assert page.context["cl"].result_count == 4
    assert not page.context["cl"].queryset.query.distinct
