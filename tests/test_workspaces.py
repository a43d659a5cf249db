"""Workspaces, memberships and what each role may do in the admin."""

import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.http import Http404
from django.urls import reverse

from governance import services
from governance.management.commands.demo_setup import DEMO_PASSWORD
from governance.models import Membership, Role, Workspace
from governance.selectors import access_workspace_by_id, role_in_workspace, workspaces_for_user
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_creating_a_workspace_makes_the_creator_its_admin():
    founder = UserFactory(is_staff=False)

    workspace = services.do_create_workspace("Initech Sales", acting_user=founder)

    assert workspace.slug == "initech-sales"
    assert role_in_workspace(founder, workspace) == Role.ADMIN
    founder.refresh_from_db()
    assert founder.is_staff
    assert workspace.history.get().history_user == founder


def test_a_duplicate_slug_is_refused_by_name(workspace):
    with pytest.raises(ValidationError, match="acme-sales"):
        services.do_create_workspace("Acme Sales", acting_user=None)


def test_the_last_admin_cannot_be_demoted_or_removed(workspace, ws_admin):
    membership = Membership.objects.get(user=ws_admin, workspace=workspace)

    with pytest.raises(ValidationError, match="last admin"):
        services.do_set_membership(workspace, ws_admin, Role.MEMBER, acting_user=ws_admin)
    with pytest.raises(ValidationError, match="last admin"):
        services.do_remove_membership(membership, acting_user=ws_admin)

    assert role_in_workspace(ws_admin, workspace) == Role.ADMIN


def test_setting_the_same_role_changes_nothing(workspace, rep):
    history_before = Membership.history.count()

    services.do_set_membership(workspace, rep, Role.MEMBER, acting_user=None)

    assert Membership.history.count() == history_before


def test_membership_changes_are_kept_in_history_with_the_actor(workspace, ws_admin, rep):
    services.do_set_membership(workspace, rep, Role.REVOPS, acting_user=ws_admin)

    latest = Membership.history.filter(user=rep).first()
    assert latest.role == Role.REVOPS
    assert latest.history_user == ws_admin


def test_selectors_hide_other_workspaces(workspace, other_workspace, rep, outsider, superuser):
    assert list(workspaces_for_user(rep)) == [workspace]
    assert set(workspaces_for_user(superuser)) == {workspace, other_workspace}
    assert list(workspaces_for_user(rep, [Role.ADMIN])) == []
    assert access_workspace_by_id(rep, workspace.pk) == workspace
    with pytest.raises(Http404):
        access_workspace_by_id(outsider, workspace.pk)
    with pytest.raises(Http404):
        access_workspace_by_id(rep, 987654)


def test_inactive_users_hold_no_workspace(workspace, rep):
    rep.is_active = False
    rep.save()

    assert list(workspaces_for_user(rep)) == []


def test_a_rep_can_read_the_workspace_but_not_change_it(workspace, rep, login):
    client = login(rep)
    url = reverse("admin:governance_workspace_change", args=[workspace.pk])

    assert client.get(reverse("admin:governance_workspace_changelist")).status_code == 200
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(url, {"name": "Renamed", "slug": "acme-sales"}).status_code == 403
    workspace.refresh_from_db()
    assert workspace.name == "Acme Sales"


def test_revops_cannot_manage_members(workspace, revops, login):
    client = login(revops)

    assert client.get(reverse("admin:governance_membership_changelist")).status_code == 200
    assert client.get(reverse("admin:governance_membership_add")).status_code == 403


def test_a_workspace_admin_adds_a_new_person_by_email(workspace, ws_admin, login):
    response = login(ws_admin).post(
        reverse("admin:governance_membership_add"),
        {
            "workspace": workspace.pk,
            "email": "New.Rep@Acme.example",
            "role": Role.MEMBER,
            "password": "a-long-enough-passphrase",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    membership = Membership.objects.get(workspace=workspace, user__email="new.rep@acme.example")
    assert membership.role == Role.MEMBER
    assert membership.user.check_password("a-long-enough-passphrase")
    assert membership.user.is_staff


def test_adding_an_unknown_email_without_a_password_explains_why(workspace, ws_admin, login):
    response = login(ws_admin).post(
        reverse("admin:governance_membership_add"),
        {"workspace": workspace.pk, "email": "ghost@acme.example", "role": Role.MEMBER},
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "No account uses ghost@acme.example yet" in str(errors["password"])


def test_an_admin_cannot_add_members_to_another_workspace(
    workspace, other_workspace, ws_admin, login
):
    response = login(ws_admin).post(
        reverse("admin:governance_membership_add"),
        {
            "workspace": other_workspace.pk,
            "email": "spy@acme.example",
            "role": Role.ADMIN,
            "password": "a-long-enough-passphrase",
        },
    )

    assert response.status_code == 200
    assert "workspace" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(workspace=other_workspace).exists()


def test_the_last_admin_demotion_is_a_form_error(workspace, ws_admin, login):
    membership = Membership.objects.get(user=ws_admin)

    response = login(ws_admin).post(
        reverse("admin:governance_membership_change", args=[membership.pk]),
        {"role": Role.MEMBER},
    )

    assert response.status_code == 200
    assert "last admin" in str(response.context["adminform"].form.errors)


def test_removing_a_member_goes_through_the_service(workspace, ws_admin, rep, login):
    membership = Membership.objects.get(user=rep)

    response = login(ws_admin).post(
        reverse("admin:governance_membership_delete", args=[membership.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert (
        Membership.history.filter(id=membership.pk, history_type="-").get().history_user == ws_admin
    )


def test_only_superusers_create_workspaces(ws_admin, superuser, login):
    url = reverse("admin:governance_workspace_add")

    assert login(ws_admin).get(url).status_code == 403
    response = login(superuser).post(url, {"name": "Hooli", "slug": "hooli"})
    assert response.status_code == 302
    assert Workspace.objects.filter(slug="hooli").exists()


def test_demo_setup_creates_working_logins(client):
    call_command("demo_setup", stdout=io.StringIO())
    printed = io.StringIO()
    call_command("demo_setup", stdout=printed)  # re-running resets, never duplicates

    assert re.search(rf"revops@demo\.example\s+{DEMO_PASSWORD}\s+Demo Co", printed.getvalue())

    demo = Workspace.objects.get(slug="demo")
    roles = dict(Membership.objects.filter(workspace=demo).values_list("user__username", "role"))
    assert roles == {
        "admin@demo.example": "admin",
        "revops@demo.example": "revops",
        "riley@demo.example": "member",
        "sam@demo.example": "member",
    }
    assert client.login(username="revops@demo.example", password=DEMO_PASSWORD)
    assert client.get(reverse("admin:index")).status_code == 200
