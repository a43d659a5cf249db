"""Every model in the admin keeps one workspace's rows away from every other workspace.

The checks are generated from the admin registry, so a model registered by a later
change is covered the moment it is registered. It needs a ``<Model>Factory`` in
tests/factories.py that accepts ``workspace=``.
"""

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import models
from django.forms import ModelChoiceField
from django.forms.models import model_to_dict
from django.urls import reverse

from governance.admin_scoping import SuperuserOnlyAdmin, WorkspaceScopedAdmin, workspace_path_of
from tests import factories

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
SCOPED = [model for model, model_admin in REGISTRY if isinstance(model_admin, WorkspaceScopedAdmin)]
PLATFORM = [model for model, model_admin in REGISTRY if isinstance(model_admin, SuperuserOnlyAdmin)]


def _label(model: type[models.Model]) -> str:
    return model._meta.label


def _url(model: type[models.Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _row_in(model: type[models.Model], workspace) -> models.Model:
    if model is type(workspace):
        return workspace
    factory = getattr(factories, f"{model.__name__}Factory", None)
    assert factory is not None, f"add {model.__name__}Factory to tests/factories.py"
    path = admin.site._registry[model].workspace_path
    return factory(workspace=workspace) if path != "pk" else factory()


def _workspace_of(model_admin: WorkspaceScopedAdmin, obj: models.Model) -> int | None:
    return model_admin._workspace_id_of(obj)


def test_every_registered_admin_is_scoped_or_superuser_only():
    unscoped = [
        _label(model)
        for model, model_admin in REGISTRY
        if not isinstance(model_admin, WorkspaceScopedAdmin | SuperuserOnlyAdmin)
    ]
    assert unscoped == [], "derive these admins from WorkspaceScopedAdmin or SuperuserOnlyAdmin"
    assert LogEntry not in admin.site._registry


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED, ids=_label)
def test_outsider_sees_an_empty_changelist(model, workspace, ws_admin, outsider, login):
    obj = _row_in(model, workspace)
    model_admin = admin.site._registry[model]

    response = login(outsider).get(_url(model, "changelist"))

    assert response.status_code == 200
    listed = list(response.context["cl"].result_list)
    assert obj.pk not in [row.pk for row in listed]
    foreign = [row for row in listed if _workspace_of(model_admin, row) == workspace.pk]
    assert foreign == []


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED, ids=_label)
@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_outsider_gets_404_on_every_object_page(model, view, workspace, outsider, login):
    obj = _row_in(model, workspace)

    response = login(outsider).get(_url(model, view, obj.pk))

    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED, ids=_label)
def test_outsider_cannot_post_a_change(model, workspace, outsider, login):
    obj = _row_in(model, workspace)
    before = model_to_dict(obj)

    response = login(outsider).post(_url(model, "change", obj.pk), {"name": "hijacked"})

    assert response.status_code == 404
    obj.refresh_from_db()
    assert model_to_dict(obj) == before


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED, ids=_label)
def test_outsider_actions_skip_foreign_rows(model, workspace, outsider, login, rf):
    obj = _row_in(model, workspace)
    before = model_to_dict(obj)
    client = login(outsider)
    request = rf.get("/")
    request.user = outsider
    actions = admin.site._registry[model].get_actions(request)

    for action in actions:
        client.post(
            _url(model, "changelist"),
            {"action": action, "_selected_action": [obj.pk], "post": "yes", "index": 0},
        )

    assert model.objects.filter(pk=obj.pk).exists()
    obj.refresh_from_db()
    assert model_to_dict(obj) == before


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED, ids=_label)
def test_outsider_form_choices_hold_no_foreign_rows(
    model, workspace, other_workspace, ws_admin, outsider, login
):
    _row_in(model, workspace)
    client = login(outsider)
    response = client.get(_url(model, "add"))
    if response.status_code == 403:  # not addable by workspace admins: check their edit form
        own = _row_in(model, other_workspace)
        response = client.get(_url(model, "change", own.pk))
    assert response.status_code == 200

    form = response.context["adminform"].form
    for name, field in form.fields.items():
        if not isinstance(field, ModelChoiceField):
            continue
        path = workspace_path_of(field.queryset.model)
        if path is None:
            continue
        leaked = field.queryset.filter(**{path: workspace.pk})
        assert not leaked.exists(), f"{_label(model)}.{name} offers {list(leaked)}"


@pytest.mark.django_db
@pytest.mark.parametrize("model", PLATFORM, ids=_label)
def test_platform_data_is_for_superusers_only(model, ws_admin, login, superuser):
    member_client = login(ws_admin)
    assert member_client.get(_url(model, "changelist")).status_code == 403
    assert member_client.get(_url(model, "change", superuser.pk)).status_code in {403, 404}

    assert login(superuser).get(_url(model, "changelist")).status_code == 200


@pytest.mark.django_db
def test_the_admin_index_lists_only_what_the_role_may_see(workspace, rep, revops, login):
    rep_page = login(rep).get(reverse("admin:index")).content.decode()
    revops_page = login(revops).get(reverse("admin:index")).content.decode()

    assert "Memberships" not in rep_page
    assert "Memberships" in revops_page
    assert "Users" not in revops_page
