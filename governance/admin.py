from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from governance import services
from governance.admin_scoping import SuperuserOnlyAdmin, WorkspaceScopedAdmin
from governance.models import (
    ADMIN_ROLES,
    CONFIGURE_ROLES,
    CrmProperty,
    Membership,
    Policy,
    Role,
    Workspace,
)
from integrations.connections import ConnectionProblem
from integrations.crm.errors import CrmError
from integrations.models import ConnectionScope


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    workspace_path = "pk"
    add_roles = frozenset()  # new customers are set up by the platform's superusers
    change_roles = ADMIN_ROLES
    list_display = ["name", "slug", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]

    @admin.display(description="Members")
    def member_count(self, obj: Workspace) -> int:
        return obj.memberships.count()

    def has_delete_permission(self, request: HttpRequest, obj: Workspace | None = None) -> bool:
        # Its audit trail keeps a workspace (the events PROTECT it), so deleting one from
        # the admin could never succeed.
        return False

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:
        if not self._allowed(request, self.change_roles if change else self.add_roles, obj):
            raise PermissionDenied("You cannot change that workspace.")
        if change:
            changes = {name: getattr(obj, name) for name in form.changed_data}
            fields = services.WORKSPACE_FIELDS
            services.do_update_workspace(
                obj,
                {name: value for name, value in changes.items() if name in fields},
                acting_user=request.user,
            )
            return
        # A superuser sets it up for a customer; they do not become one of its members.
        workspace = services.do_create_workspace(
            obj.name, slug=obj.slug, acting_user=request.user, add_as_admin=False
        )
        obj.pk, obj.created_at = workspace.pk, workspace.created_at
        obj._state.adding, obj._state.db = False, workspace._state.db


class MembershipAddForm(forms.ModelForm):
    email = forms.EmailField(help_text="An existing account is reused; otherwise one is created.")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="Initial password",
        help_text="Only needed when no account uses this email yet.",
    )

    class Meta:
        model = Membership
        fields = ["workspace", "role"]

    def clean(self) -> dict:
        cleaned = super().clean()
        email = cleaned.get("email")
        workspace = cleaned.get("workspace")
        if not email:
            return cleaned
        accounts = get_user_model().objects.filter(email__iexact=email)
        if workspace and Membership.objects.filter(workspace=workspace, user__in=accounts):
            raise ValidationError(
                f"{email} is already a member of {workspace}; change their role instead."
            )
        if not accounts.exists():
            password = cleaned.get("password")
            if not password:
                self.add_error("password", f"No account uses {email} yet: give a password.")
            else:
                try:
                    validate_password(password)
                except ValidationError as exc:
                    self.add_error("password", exc)
        return cleaned


class MembershipChangeForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        services.check_role_change(self.instance, Role(role))
        return role


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    view_roles = CONFIGURE_ROLES
    add_roles = ADMIN_ROLES
    change_roles = ADMIN_ROLES
    delete_roles = ADMIN_ROLES
    list_display = ["user", "email", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "user__email"]
    add_form = MembershipAddForm

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj: Membership) -> str:
        return obj.user.email

    def get_form(self, request: HttpRequest, obj: Membership | None = None, **kwargs):
        kwargs["form"] = self.add_form if obj is None else MembershipChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> list[str]:
        if obj is None:
            return ["workspace", "email", "role", "password"]
        return ["workspace", "user", "role", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list:
        return ["workspace", "user", "created_at"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        # The forms validated everything the services check, so these do not raise here.
        role = Role(form.cleaned_data["role"])
        if change:
            user = obj.user
        else:
            user, created = services.get_or_create_user(
                form.cleaned_data["email"], password=form.cleaned_data.get("password")
            )
            if created:
                self.message_user(request, f"Created the account {user.username}.")
        membership = services.do_set_membership(obj.workspace, user, role, acting_user=request.user)
        obj.pk = membership.pk
        obj.user = membership.user

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.do_remove_membership(obj, acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for membership in queryset:
            services.do_remove_membership(membership, acting_user=request.user)


# Accounts and groups span workspaces, so only the platform's superusers manage them;
# workspace admins add people through Memberships.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class AccountAdmin(SuperuserOnlyAdmin, UserAdmin):
    pass


@admin.register(Group)
class PermissionGroupAdmin(SuperuserOnlyAdmin, GroupAdmin):
    pass


class PolicyForm(forms.ModelForm):
    """Offers, in each whitelist, only the properties of the policy's own workspace and CRM,
    labelled with their object so the two-pane widget shows what each one belongs to."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        policy = self.instance
        for name in ("read_properties", "write_properties"):
            field = self.fields.get(name)
            if field is None:
                continue
            if policy.pk is None:  # workspace and CRM are not chosen yet
                field.queryset = field.queryset.none()
            else:
                field.queryset = field.queryset.filter(
                    workspace_id=policy.workspace_id,
                    provider=policy.provider,
                    connection__scope=ConnectionScope.WORKSPACE,
                )
            field.label_from_instance = CrmProperty.choice_label
        if "write_properties" in self.fields:
            # A read-only property cannot be written whatever the policy says.
            field = self.fields["write_properties"]
            field.queryset = field.queryset.filter(read_only=False)

    def clean(self) -> dict:
        cleaned = super().clean()
        readable = list(cleaned.get("read_properties") or [])
        for prop in cleaned.get("write_properties") or []:
            chosen = [other for other in readable if other.object_type == prop.object_type]
            if chosen and prop not in chosen:
                self.add_error(
                    "write_properties",
                    f"{prop.choice_label()} is writable but not readable: add it to the read "
                    "whitelist too (the agent reads a value before it overwrites it).",
                )
        return cleaned


@admin.register(Policy)
class PolicyAdmin(WorkspaceScopedAdmin):
    form = PolicyForm
    list_display = [
        "__str__",
        "workspace",
        "provider",
        "paused",
        "dry_run",
        "company_scope",
        "contact_scope",
        "deal_scope",
        "review_default",
        "updated_at",
    ]
    list_filter = ["provider", "paused", "dry_run", "workspace"]
    list_select_related = ["workspace"]
    filter_horizontal = ["read_properties", "write_properties"]
    actions = ["refresh_crm_properties"]
    fieldsets = [
        (None, {"fields": ["workspace", "provider", "paused", "dry_run"]}),
        ("Objects", {"fields": ["company_scope", "contact_scope", "deal_scope"]}),
        (
            "Properties",
            {
                "fields": ["read_properties", "write_properties"],
                "description": (
                    "Properties come from the CRM: use the action “Refresh CRM properties” "
                    "on the policy list after the CRM's fields change."
                ),
            },
        ),
        (
            "Actions the agent may take",
            {
                "fields": [
                    "allow_create",
                    "allow_stage_change",
                    "allow_update_closed",
                    "allow_clear_values",
                    "allow_create_associations",
                ]
            },
        ),
        ("Review", {"fields": ["review_default", "review_overrides", "chat_review"]}),
        (
            "Connections and record access",
            {
                "fields": [
                    "force_workspace_connection_for_chat",
                    "hubspot_access_member",
                    "hubspot_access_revops",
                    "hubspot_access_admin",
                ]
            },
        ),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Policy | None = None) -> list:
        if obj is not None:
            return self.fieldsets
        # The whitelists list the CRM's properties of the policy's workspace and CRM,
        # which are known only once the policy is saved.
        return [entry for entry in self.fieldsets if entry[0] != "Properties"]

    def get_readonly_fields(self, request: HttpRequest, obj: Policy | None = None) -> list[str]:
        # Moving a policy to another workspace or CRM would strand its whitelists.
        return ["workspace", "provider"] if obj is not None else []

    @admin.action(description="Refresh CRM properties", permissions=["change"])
    def refresh_crm_properties(self, request: HttpRequest, queryset: QuerySet) -> None:
        for policy in queryset.select_related("workspace"):
            if not self.has_change_permission(request, policy):
                continue
            try:
                summary = services.do_refresh_properties_for(
                    policy.workspace, policy.provider, acting_user=request.user
                )
            except ConnectionProblem as exc:
                self.message_user(request, f"{policy}: {exc.message}", messages.ERROR)
            except CrmError as exc:  # str() keeps the CRM's status and error code
                self.message_user(request, f"{policy}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{policy}: {summary}.", messages.SUCCESS)


@admin.register(CrmProperty)
class CrmPropertyAdmin(WorkspaceScopedAdmin):
    """The cached metadata, read-only: it changes only by refreshing from the CRM."""

    view_roles = CONFIGURE_ROLES
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = ["label", "name", "object_type", "type", "provider", "custom", "missing"]
    list_filter = ["provider", "object_type", "missing", "custom", "workspace"]
    search_fields = ["name", "label"]
    list_select_related = ["workspace"]
    readonly_fields = [field.name for field in CrmProperty._meta.fields]


# The API credentials' admin lives in its own module; importing it here registers it.
import governance.api_auth_admin  # noqa: E402, F401

# The review queue's admin lives in its own module; importing it here registers it.
from governance import review_admin  # noqa: E402, F401
