"""Every configuration change made in the admin or through the API is an audit event
naming who made it (issue 14).

The admin half walks ``admin.site._registry``: every add, change and delete form and every
action a superuser is offered is either a case here, which posts a valid change through the
real admin view with Django's test client and looks for its event, or declared as not
configuration, with the reason. A new model, form or action that is neither fails
``test_every_admin_write_is_a_case_or_declared``; so does a case nothing offers any more.
The API half does the same over the OpenAPI schema's write operations.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from audit.models import AuditEvent
from governance.models import Membership, Policy, Role, Workspace
from tests.factories import (
    TEST_PASSWORD,
    ApiKeyFactory,
    ApiTokenFactory,
    ConnectionFactory,
    FieldRuleFactory,
    PolicyFactory,
    WorkflowFactory,
)

pytestmark = pytest.mark.django_db

# Whole models that are not configuration: nobody in a workspace may write them.
NOT_CONFIGURATION_MODELS = {
    "audit.AuditEvent": "the audit trail itself: append-only, read-only in the admin",
    "crm_agents.Call": "a call received: a record of what was said, not configuration",
    "crm_agents.AgentRun": "a record of one run; running again is work, not configuration",
    "crm_agents.CallMatch": "the match a call's runs share: stored and audited by the runs",
    "governance.ChangeSet": "the review queue: decisions are audited by governance.review",
    "governance.CrmProperty": "the CRM's own metadata, cached by refreshing it",
    "integrations.CrmCall": "a record of one CRM call",
    "auth.User": "platform accounts: in no workspace, so in no workspace's audit trail; "
    "superusers manage them and Django's admin log records it",
    "auth.Group": "platform permission groups, as for accounts",
}
NOT_CONFIGURATION_APPS = {
    "sandbox": "the sandbox stands in for the CRMs themselves: its rows are their data",
}
NOT_CONFIGURATION_ACTIONS = {
    ("crm_agents.Workflow", "action:test_on_past_call"): "a TEST run: nothing is written",
    ("governance.Policy", "action:refresh_crm_properties"): "caches the CRM's property "
    "metadata; the policy does not change",
    ("integrations.Connection", "action:test_connections"): "one harmless CRM call, "
    "recorded as a CrmCall; nothing configured changes (its result is still audited, as "
    "connection.tested: tests/integrations/test_connection_admin.py)",
}


@dataclass
class Cast:
    workspace: Workspace
    ws_admin: AbstractBaseUser
    rep: AbstractBaseUser
    superuser: AbstractBaseUser
    since: int = 0  # events up to this id were there before the case acted

    def ready(self) -> None:
        """The set-up is done: what follows is the change under test."""
        self.since = _newest_event_id()

    def client(self, user: AbstractBaseUser) -> Client:
        client = Client()
        assert client.login(username=user.get_username(), password=TEST_PASSWORD)
        return client


@dataclass
class Done:
    """What a case did: the admin's answer, and the events it must have left."""

    response: HttpResponse
    actor: AbstractBaseUser
    actions: tuple[str, ...]
    workspace: Workspace


@pytest.fixture
def cast(workspace, ws_admin, rep, superuser) -> Cast:
    return Cast(workspace, ws_admin, rep, superuser)


# --- posting the admin's own forms back ----------------------------------------------------


def _form_data(page: HttpResponse) -> dict[str, object]:
    """What a browser would post back for the admin form ``page`` shows, unchanged."""
    assert page.status_code == 200, page.status_code
    forms = [page.context["adminform"].form]
    data: dict[str, object] = {}
    for inline in page.context.get("inline_admin_formsets", []):
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()  # prepared for the widget, as the page shows it
            if value is None or value is False:
                continue  # an unchecked box and an empty choice are not posted
            posted = "on" if value is True else value
            data[form[name].html_name] = posted
            if field.show_hidden_initial:  # a callable default: the page carries it twice
                data[form[name].html_initial_name] = posted
    return data


def _newest_event_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _url(name: str, *args: object) -> str:
    return reverse(f"admin:{name}", args=args)


def _add(cast: Cast, user, model: str, changes: dict) -> HttpResponse:
    client = cast.client(user)
    url = _url(f"{model}_add")
    data = {**_form_data(client.get(url)), **changes}
    cast.ready()
    return client.post(url, data)


def _change(cast: Cast, user, model: str, pk: int, changes: dict) -> HttpResponse:
    client = cast.client(user)
    url = _url(f"{model}_change", pk)
    data = {**_form_data(client.get(url)), **changes}
    cast.ready()
    return client.post(url, data)


def _delete(cast: Cast, user, model: str, pk: int) -> HttpResponse:
    client = cast.client(user)
    cast.ready()
    return client.post(_url(f"{model}_delete", pk), {"post": "yes"})


def _action(cast: Cast, user, model: str, action: str, *pks: int) -> HttpResponse:
    client = cast.client(user)
    data = {"action": action, "_selected_action": list(pks), "post": "yes"}
    cast.ready()
    return client.post(_url(f"{model}_changelist"), data)


# --- the cases -------------------------------------------------------------------------------

ADMIN_CASES: dict[tuple[str, str], Callable[[Cast], Done]] = {}


def case(model: str, op: str):
    def register(function: Callable[[Cast], Done]) -> Callable[[Cast], Done]:
        ADMIN_CASES[(model, op)] = function
        return function

    return register


@case("governance.Workspace", "add")
def _workspace_add(cast: Cast) -> Done:
    new = {"name": "Initech Sales", "slug": "initech-sales"}
    response = _add(cast, cast.superuser, "governance_workspace", new)
    created = Workspace.objects.filter(slug="initech-sales").first() or cast.workspace
    return Done(response, cast.superuser, ("workspace.created",), created)


@case("governance.Workspace", "change")
def _workspace_change(cast: Cast) -> Done:
    response = _change(
        cast, cast.ws_admin, "governance_workspace", cast.workspace.pk, {"name": "Acme EMEA"}
    )
    return Done(response, cast.ws_admin, ("workspace.changed",), cast.workspace)


@case("governance.Membership", "add")
def _membership_add(cast: Cast) -> Done:
    new = {
        "workspace": cast.workspace.pk,
        "email": "new.rep@acme.example",
        "role": Role.MEMBER,
        "password": TEST_PASSWORD,
    }
    response = _add(cast, cast.ws_admin, "governance_membership", new)
    return Done(response, cast.ws_admin, ("membership.added",), cast.workspace)


def _rep_membership(cast: Cast) -> Membership:
    return Membership.objects.get(workspace=cast.workspace, user=cast.rep)


@case("governance.Membership", "change")
def _membership_change(cast: Cast) -> Done:
    pk = _rep_membership(cast).pk
    response = _change(cast, cast.ws_admin, "governance_membership", pk, {"role": Role.REVOPS})
    return Done(response, cast.ws_admin, ("membership.role_changed",), cast.workspace)


@case("governance.Membership", "delete")
def _membership_delete(cast: Cast) -> Done:
    response = _delete(cast, cast.ws_admin, "governance_membership", _rep_membership(cast).pk)
    return Done(response, cast.ws_admin, ("membership.removed",), cast.workspace)


@case("governance.Membership", "action:delete_selected")
def _membership_delete_selected(cast: Cast) -> Done:
    pk = _rep_membership(cast).pk
    response = _action(cast, cast.ws_admin, "governance_membership", "delete_selected", pk)
    return Done(response, cast.ws_admin, ("membership.removed",), cast.workspace)


@case("governance.Policy", "add")
def _policy_add(cast: Cast) -> Done:
    new = {"workspace": cast.workspace.pk, "provider": "salesforce", "dry_run": "on"}
    response = _add(cast, cast.ws_admin, "governance_policy", new)
    return Done(response, cast.ws_admin, ("policy.changed",), cast.workspace)


@case("governance.Policy", "change")
def _policy_change(cast: Cast) -> Done:
    policy = PolicyFactory(workspace=cast.workspace)
    response = _change(cast, cast.ws_admin, "governance_policy", policy.pk, {"dry_run": "on"})
    return Done(response, cast.ws_admin, ("policy.changed",), cast.workspace)


@case("governance.Policy", "delete")
def _policy_delete(cast: Cast) -> Done:
    policy = PolicyFactory(workspace=cast.workspace)
    response = _delete(cast, cast.superuser, "governance_policy", policy.pk)
    return Done(response, cast.superuser, ("policy.changed",), cast.workspace)


@case("governance.ApiKey", "add")
def _api_key_add(cast: Cast) -> Done:
    new = {"workspace": cast.workspace.pk, "name": "Gong webhook"}
    response = _add(cast, cast.ws_admin, "governance_apikey", new)
    return Done(response, cast.ws_admin, ("api_key.created",), cast.workspace)


@case("governance.ApiKey", "change")
def _api_key_change(cast: Cast) -> Done:
    key = ApiKeyFactory(workspace=cast.workspace, name="Gong")
    response = _change(cast, cast.ws_admin, "governance_apikey", key.pk, {"name": "Gong EU"})
    return Done(response, cast.ws_admin, ("api_key.renamed",), cast.workspace)


@case("governance.ApiKey", "action:revoke")
def _api_key_revoke(cast: Cast) -> Done:
    key = ApiKeyFactory(workspace=cast.workspace)
    response = _action(cast, cast.ws_admin, "governance_apikey", "revoke", key.pk)
    return Done(response, cast.ws_admin, ("api_key.revoked",), cast.workspace)


@case("governance.ApiToken", "action:revoke")
def _api_token_revoke(cast: Cast) -> Done:
    token = ApiTokenFactory(user=cast.rep)
    response = _action(cast, cast.superuser, "governance_apitoken", "revoke", token.pk)
    return Done(response, cast.superuser, ("api_token.revoked",), cast.workspace)


RULE_FORMS = {
    "rules-TOTAL_FORMS": "1",
    "rules-INITIAL_FORMS": "0",
    "rules-0-order": "0",
    "rules-0-field": "amount",
    "rules-0-instruction": "The contract value the buyer agreed to",
    "rules-0-write_mode": "overwrite",
    "rules-0-read_dependencies": '["stage"]',
}


@case("crm_agents.Workflow", "add")
def _workflow_add(cast: Cast) -> Done:
    new = {
        "workspace": cast.workspace.pk,
        "name": "Deal hygiene",
        "key": "hygiene",
        "provider": "hubspot",
        "object_type": "deal",
        **RULE_FORMS,
    }
    response = _add(cast, cast.ws_admin, "crm_agents_workflow", new)
    actions = ("workflow.created", "field_rule.created")
    return Done(response, cast.ws_admin, actions, cast.workspace)


@case("crm_agents.Workflow", "change")
def _workflow_change(cast: Cast) -> Done:
    workflow = WorkflowFactory(workspace=cast.workspace)
    FieldRuleFactory(workspace=cast.workspace, workflow=workflow, field="amount", order=0)
    FieldRuleFactory(workspace=cast.workspace, workflow=workflow, field="close_date", order=1)
    changes = {
        "name": "Deal hygiene (EMEA)",
        "paused": "on",
        "rules-0-instruction": "The amount the buyer stated, as a number",
        "rules-1-DELETE": "on",
        "rules-2-order": "2",
        "rules-2-field": "next_step",
        "rules-2-instruction": "The next step both sides agreed on",
        "rules-2-write_mode": "overwrite",
        "rules-2-read_dependencies": "[]",
    }
    response = _change(cast, cast.ws_admin, "crm_agents_workflow", workflow.pk, changes)
    actions = (
        "workflow.paused",
        "workflow.changed",
        "field_rule.changed",
        "field_rule.deleted",
        "field_rule.created",
    )
    return Done(response, cast.ws_admin, actions, cast.workspace)


@case("crm_agents.Workflow", "delete")
def _workflow_delete(cast: Cast) -> Done:
    workflow = WorkflowFactory(workspace=cast.workspace)
    FieldRuleFactory(workspace=cast.workspace, workflow=workflow)
    response = _delete(cast, cast.superuser, "crm_agents_workflow", workflow.pk)
    return Done(response, cast.superuser, ("workflow.deleted",), cast.workspace)


@case("crm_agents.Workflow", "action:pause_workflows")
def _workflow_pause(cast: Cast) -> Done:
    workflow = WorkflowFactory(workspace=cast.workspace)
    response = _action(cast, cast.ws_admin, "crm_agents_workflow", "pause_workflows", workflow.pk)
    return Done(response, cast.ws_admin, ("workflow.paused",), cast.workspace)


@case("crm_agents.Workflow", "action:resume_workflows")
def _workflow_resume(cast: Cast) -> Done:
    workflow = WorkflowFactory(workspace=cast.workspace, paused=True)
    response = _action(cast, cast.ws_admin, "crm_agents_workflow", "resume_workflows", workflow.pk)
    return Done(response, cast.ws_admin, ("workflow.resumed",), cast.workspace)


@case("integrations.Connection", "action:disconnect_connections")
def _connection_disconnect(cast: Cast) -> Done:
    connection = ConnectionFactory(workspace=cast.workspace)
    response = _action(
        cast, cast.ws_admin, "integrations_connection", "disconnect_connections", connection.pk
    )
    return Done(response, cast.ws_admin, ("connection.disconnected",), cast.workspace)


# --- the admin walk --------------------------------------------------------------------------


def _offered(user: AbstractBaseUser) -> set[tuple[str, str]]:
    """Every (model, form or action) of the admin that ``user`` may use to write."""
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    offered: set[tuple[str, str]] = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if label in NOT_CONFIGURATION_MODELS or model._meta.app_label in NOT_CONFIGURATION_APPS:
            continue
        forms = {
            "add": model_admin.has_add_permission(request),
            "change": model_admin.has_change_permission(request),
            "delete": model_admin.has_delete_permission(request),
        }
        offered |= {(label, op) for op, allowed in forms.items() if allowed}
        offered |= {(label, f"action:{name}") for name in model_admin.get_actions(request)}
    return offered


def test_every_admin_write_is_a_case_or_declared(superuser):
    offered = _offered(superuser)

    assert offered - set(ADMIN_CASES) - set(NOT_CONFIGURATION_ACTIONS) == set(), (
        "an admin form or action that changes data has no audit case here: add one, or "
        "declare why it is not configuration"
    )
    assert set(ADMIN_CASES) - offered == set(), "a case for something the admin no longer offers"


def _form_errors(response: HttpResponse) -> object:
    context = response.context or {}
    errors = [context["adminform"].form.errors] if "adminform" in context else []
    for inline in context.get("inline_admin_formsets", []):
        errors += [inline.formset.errors, inline.formset.non_form_errors()]
    return errors or response.content[:2000]


@pytest.mark.parametrize("key", sorted(ADMIN_CASES), ids=lambda key: f"{key[0]}-{key[1]}")
def test_each_admin_write_is_audited_naming_the_actor(key, cast):
    done = ADMIN_CASES[key](cast)

    assert done.response.status_code == 302, _form_errors(done.response)
    events = list(AuditEvent.objects.filter(pk__gt=cast.since).order_by("pk"))
    for action in done.actions:
        found = [event for event in events if event.action == action]
        assert found, f"no {action} event; got {[event.action for event in events]}"
        for event in found:
            assert event.workspace_id == done.workspace.pk
            assert event.actor_user_id == done.actor.pk
            assert event.actor_label == done.actor.get_username()
            assert event.actor_kind == "user"


# --- the API walk ----------------------------------------------------------------------------

WRITES = {"post", "put", "patch", "delete"}

API_CASES: dict[tuple[str, str], Callable[[Cast], tuple[object, str]]] = {}
NOT_CONFIGURATION_API = {
    ("POST", "/api/v1/calls/"): "submits a call: work, audited as call.received",
    ("POST", "/api/v1/workflows/{id}/test/"): "a TEST run of a workflow: nothing is written",
    ("POST", "/api/v1/change-sets/{id}/approve/"): "a review decision (governance.review)",
    ("POST", "/api/v1/change-sets/{id}/reject/"): "a review decision (governance.review)",
    ("POST", "/api/v1/proposals/{id}/decide/"): "a review decision (governance.review)",
    ("POST", "/api/v1/change-sets/{id}/choose/"): "a review decision, audited as match.chosen",
    ("POST", "/api/v1/chat-sessions/"): "a rep's chat, not configuration",
    ("POST", "/api/v1/chat-sessions/{id}/messages/"): "a rep's chat, not configuration",
}


def api_case(method: str, path: str):
    def register(function):
        API_CASES[(method, path)] = function
        return function

    return register


def _api(user: AbstractBaseUser) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@api_case("POST", "/api/v1/tokens/")
def _token_create(cast: Cast):
    cast.ready()
    response = _api(cast.rep).post("/api/v1/tokens/", {"name": "My script"}, format="json")
    return response, "api_token.created"


@api_case("DELETE", "/api/v1/tokens/{id}/")
def _token_revoke(cast: Cast):
    token = ApiTokenFactory(user=cast.rep)
    cast.ready()
    return _api(cast.rep).delete(f"/api/v1/tokens/{token.pk}/"), "api_token.revoked"


def _write_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in WRITES
    }


def test_every_api_write_is_a_case_or_declared():
    operations = _write_operations()

    assert operations - set(API_CASES) - set(NOT_CONFIGURATION_API) == set(), (
        "an API write operation has no audit case here: add one, or declare why it is "
        "not configuration"
    )
    assert (set(API_CASES) | set(NOT_CONFIGURATION_API)) - operations == set()


@pytest.mark.parametrize("key", sorted(API_CASES), ids=lambda key: f"{key[0]} {key[1]}")
def test_each_api_write_is_audited_naming_the_actor(key, cast):
    response, action = API_CASES[key](cast)

    assert response.status_code in {200, 201, 204}, response.content
    event = AuditEvent.objects.get(pk__gt=cast.since, action=action)
    assert event.workspace_id == cast.workspace.pk
    assert event.actor_user_id == cast.rep.pk
    assert event.actor_label == cast.rep.get_username()


# --- what the events say ---------------------------------------------------------------------


def test_a_workflow_edit_records_only_the_fields_that_changed(cast):
    workflow = WorkflowFactory(workspace=cast.workspace, name="Deal hygiene")

    changes = {"name": "Deal hygiene (EMEA)", "trigger_min_duration_s": "300"}
    _change(cast, cast.ws_admin, "crm_agents_workflow", workflow.pk, changes)
    since = cast.since
    again = _change(cast, cast.ws_admin, "crm_agents_workflow", workflow.pk, {})

    assert again.status_code == 302, _form_errors(again)
    event = AuditEvent.objects.get(pk__gt=since)  # saving it unchanged wrote nothing
    assert event.action == "workflow.changed"
    assert event.before == {"name": "Deal hygiene", "trigger_min_duration_s": 0}
    assert event.after == {"name": "Deal hygiene (EMEA)", "trigger_min_duration_s": 300}
    assert event.workflow_label == "Deal hygiene (EMEA)"


def test_the_services_write_nothing_when_nothing_changes(cast):
    from crm_agents.configuration import do_update_field_rule, do_update_workflow

    workflow = WorkflowFactory(workspace=cast.workspace, name="Deal hygiene")
    rule = FieldRuleFactory(workspace=cast.workspace, workflow=workflow, order=0)
    count = AuditEvent.objects.count()

    unchanged = {"name": "Deal hygiene", "trigger_min_duration_s": "0", "paused": False}
    assert do_update_workflow(workflow, unchanged, actor=cast.ws_admin) == []
    assert do_update_field_rule(rule, {"order": "0"}, actor=cast.ws_admin) == []
    assert AuditEvent.objects.count() == count


def test_a_deleted_workflow_keeps_its_rules_in_the_event(cast):
    workflow = WorkflowFactory(workspace=cast.workspace)
    FieldRuleFactory(workspace=cast.workspace, workflow=workflow, field="amount")

    _delete(cast, cast.superuser, "crm_agents_workflow", workflow.pk)

    event = AuditEvent.objects.get(action="workflow.deleted")
    assert event.before["key"] == workflow.key
    assert [rule["field"] for rule in event.before["rules"]] == ["amount"]
    assert event.after is None


def test_a_workflow_from_a_template_is_audited_with_its_rules(cast):
    client = cast.client(cast.ws_admin)
    data = {"workspace": cast.workspace.pk, "provider": "hubspot", "template": "amount-close-date"}

    client.post(_url("crm_agents_workflow_from_template"), data)

    events = AuditEvent.objects.filter(actor_user=cast.ws_admin).order_by("sequence")
    assert [(event.action, event.field) for event in events] == [
        ("workflow.created", ""),
        ("field_rule.created", "amount"),
        ("field_rule.created", "close_date"),
    ]
    assert events[0].context["template"] == "amount-close-date"


def test_a_role_change_records_the_old_and_new_role(cast):
    _membership_change(cast)

    event = AuditEvent.objects.get(action="membership.role_changed")
    assert (event.before, event.after) == ({"role": "member"}, {"role": "revops"})


def test_a_policy_change_records_the_old_and_new_values(cast):
    policy = PolicyFactory(workspace=cast.workspace, dry_run=False)

    _change(cast, cast.ws_admin, "governance_policy", policy.pk, {"dry_run": "on"})
    _change(cast, cast.ws_admin, "governance_policy", policy.pk, {"dry_run": "on"})

    events = AuditEvent.objects.filter(action="policy.changed", actor_user=cast.ws_admin)
    assert [(event.before, event.after) for event in events] == [
        ({"dry_run": False}, {"dry_run": True})
    ]


def test_a_policy_change_and_its_event_commit_together(cast):
    policy = PolicyFactory(workspace=cast.workspace)
    count = AuditEvent.objects.count()

    written: list[int] = []

    def change_then_fail() -> None:
        with transaction.atomic():
            policy.dry_run = True
            policy.save()
            written.append(AuditEvent.objects.count())  # inside the transaction
            raise RuntimeError("the change fails after its save")

    with pytest.raises(RuntimeError):
        change_then_fail()

    assert written == [count + 1]
    assert AuditEvent.objects.count() == count
    assert Policy.objects.get(pk=policy.pk).dry_run is False
