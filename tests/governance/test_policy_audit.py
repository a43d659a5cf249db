"""Every policy change is an audit event naming who changed which fields."""

import pytest

from audit.models import AuditEvent
from tests.factories import CrmPropertyFactory, PolicyFactory

pytestmark = pytest.mark.django_db


def _events():
    return list(AuditEvent.objects.filter(action="policy.changed").order_by("sequence"))


def test_creating_and_changing_a_policy_is_audited_with_the_changed_fields(workspace, revops):
    policy = PolicyFactory(workspace=workspace)
    policy.allow_stage_change = True
    policy.dry_run = True
    policy._history_user = revops
    policy.save()

    created, changed = _events()
    assert created.reason == "policy created: created"
    assert changed.context["fields"] == ["allow_stage_change", "dry_run"]
    assert changed.actor_user == revops
    assert changed.actor_kind == "user"


def test_whitelist_changes_are_audited(workspace):
    policy = PolicyFactory(workspace=workspace)
    amount = CrmPropertyFactory(workspace=workspace, object_type="deal", name="amount")

    policy.write_properties.add(amount)

    assert "write_properties" in _events()[-1].context["fields"]
