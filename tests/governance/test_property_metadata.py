"""CRM property metadata cached from the workspace connection, on both CRMs: refresh,
flagging what the CRM stopped returning, the command, the admin action and errors."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from governance import services
from governance.models import CrmProperty
from integrations.connections import ConnectionMissing
from integrations.crm.errors import CrmError
from integrations.crm.profiles import PROFILES
from integrations.crm.types import ObjectType, Provider
from integrations.models import ConnectionScope, CrmCall
from integrations.sandbox import seed
from tests.factories import PolicyFactory


@pytest.fixture
def connection(crm_setup, workspace, ws_admin):
    return crm_setup.connect(
        workspace, ConnectionScope.WORKSPACE, crm_setup.admin, acting_user=ws_admin
    )


def native(provider: str, object_type: ObjectType, field: str) -> str:
    return PROFILES[Provider(provider)].native_field(object_type, field)


def test_it_caches_standard_and_custom_properties(crm_setup, connection, revops):
    seed.add_custom_field(crm_setup.account, "deal", "pain_points", "text", label="Pain points")

    summary = services.do_refresh_properties(connection, acting_user=revops)

    rows = CrmProperty.objects.filter(connection=connection)
    assert summary.added == rows.count() > 0
    assert (summary.updated, summary.missing) == (0, 0)
    assert set(rows.values_list("object_type", flat=True)) == {"company", "contact", "deal"}
    amount = rows.get(
        object_type="deal", name=native(crm_setup.provider, ObjectType.DEAL, "amount")
    )
    assert (amount.type, amount.custom, amount.missing) == ("number", False, False)
    assert amount.workspace == connection.workspace
    assert amount.provider == crm_setup.provider
    pain = rows.get(
        object_type="deal", name=native(crm_setup.provider, ObjectType.DEAL, "pain_points")
    )
    assert (pain.label, pain.type, pain.custom) == ("Pain points", "text", True)
    # How long a text may be, as the describe says: what an append is checked against.
    next_step = rows.get(
        object_type="deal", name=native(crm_setup.provider, ObjectType.DEAL, "next_step")
    )
    assert next_step.max_length == {"hubspot": 65_536, "salesforce": 255}[crm_setup.provider]
    stage = rows.get(object_type="deal", name=native(crm_setup.provider, ObjectType.DEAL, "stage"))
    assert stage.type == "enumeration"
    assert stage.options
    # One describe per object type, recorded against the workspace connection.
    calls = CrmCall.objects.filter(operation="describe")
    assert sorted(calls.values_list("object_type", flat=True)) == ["company", "contact", "deal"]
    assert {(call.purpose, call.acting_user) for call in calls} == {("workflow", revops)}


def test_a_property_removed_from_the_crm_is_flagged_missing_not_deleted(
    crm_setup, connection, revops
):
    field = seed.add_custom_field(crm_setup.account, "deal", "discount", "number")
    services.do_refresh_properties(connection, acting_user=revops)
    policy = PolicyFactory(workspace=connection.workspace, provider=crm_setup.provider)
    cached = CrmProperty.objects.get(connection=connection, name=field.name)
    policy.read_properties.add(cached)
    field.delete()

    summary = services.do_refresh_properties(connection, acting_user=revops)

    assert (summary.added, summary.updated, summary.missing) == (0, 0, 1)
    cached.refresh_from_db()
    assert cached.missing
    assert str(cached).endswith("— no longer in the CRM")
    assert list(policy.read_properties.all()) == [cached]

    seed.add_custom_field(crm_setup.account, "deal", "discount", "number")
    summary = services.do_refresh_properties(connection, acting_user=revops)

    assert (summary.added, summary.updated, summary.missing) == (0, 1, 0)
    cached.refresh_from_db()
    assert not cached.missing


def test_the_command_refreshes_each_workspace_connection(crm_setup, connection, capsys):
    call_command("refresh_crm_properties", "--workspace", "acme-sales")

    out = capsys.readouterr().out
    count = CrmProperty.objects.filter(connection=connection).count()
    assert count > 0
    name = connection.get_provider_display()
    assert out == f"acme-sales {name}: {count} added, 0 updated, 0 no longer in the CRM\n"


def test_the_command_reports_what_cannot_be_refreshed(crm_setup, connection, capsys):
    crm_setup.account.error_rate = 1.0
    crm_setup.account.save()

    with pytest.raises(CommandError, match=r"1 connection\(s\) could not be refreshed"):
        call_command("refresh_crm_properties", "--provider", crm_setup.provider)

    assert capsys.readouterr().err.startswith(f"acme-sales {connection.get_provider_display()}: ")
    assert not CrmProperty.objects.exists()


def test_crm_errors_propagate_with_the_crms_words(crm_setup, connection, revops):
    crm_setup.account.error_rate = 1.0
    crm_setup.account.save()

    with pytest.raises(CrmError) as caught:
        services.do_refresh_properties(connection, acting_user=revops)

    assert str(caught.value)
    assert not CrmProperty.objects.exists()


def test_the_policy_action_refreshes_and_reports(crm_setup, connection, revops, login):
    policy = PolicyFactory(workspace=connection.workspace, provider=crm_setup.provider)

    response = login(revops).post(
        reverse("admin:governance_policy_changelist"),
        {"action": "refresh_crm_properties", "_selected_action": [policy.pk]},
        follow=True,
    )

    count = CrmProperty.objects.filter(connection=connection).count()
    assert count > 0
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [f"{policy}: {count} added, 0 updated, 0 no longer in the CRM."]


@pytest.mark.django_db
def test_the_policy_action_says_what_to_connect(workspace, revops, login):
    policy = PolicyFactory(workspace=workspace, provider="hubspot")

    response = login(revops).post(
        reverse("admin:governance_policy_changelist"),
        {"action": "refresh_crm_properties", "_selected_action": [policy.pk]},
        follow=True,
    )

    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith(
        f"{policy}: HubSpot is not connected for the workspace Acme Sales: a workspace admin "
        "must connect it at"
    )
    with pytest.raises(ConnectionMissing):
        services.do_refresh_properties_for(workspace, "hubspot", acting_user=revops)


def test_reps_cannot_refresh(crm_setup, connection, rep, login):
    policy = PolicyFactory(workspace=connection.workspace, provider=crm_setup.provider)

    login(rep).post(
        reverse("admin:governance_policy_changelist"),
        {"action": "refresh_crm_properties", "_selected_action": [policy.pk]},
    )

    assert not CrmProperty.objects.exists()
