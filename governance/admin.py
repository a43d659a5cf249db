from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from governance import services
from governance.admin_scoping import SuperuserOnlyAdmin, WorkspaceScopedAdmin
from governance.models import ADMIN_ROLES, CONFIGURE_ROLES, Membership, Policy, Role, Workspace


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

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        workspace = services.do_create_workspace(obj.name, slug=obj.slug, acting_user=None)
        obj.pk = workspace.pk


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


@admin.register(Policy)
class PolicyAdmin(WorkspaceScopedAdmin):
    list_display = [
        "__str__",
        "workspace",
        "provider",
        "force_workspace_connection_for_chat",
        "hubspot_access_member",
        "updated_at",
    ]
    list_filter = ["provider", "workspace"]
    fields = [
        "workspace",
        "provider",
        "force_workspace_connection_for_chat",
        "hubspot_access_member",
        "hubspot_access_revops",
        "hubspot_access_admin",
    ]
