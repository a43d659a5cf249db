"""State changes of workspaces and memberships. Views, admin and commands call these."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from governance.models import Membership, Role, Workspace

User = get_user_model()


@transaction.atomic
def do_create_workspace(
    name: str, *, acting_user: AbstractBaseUser | None, slug: str | None = None
) -> Workspace:
    """Create a workspace; the acting user (if any) becomes its first admin."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A workspace needs a name."})
    slug = slug or slugify(name)[:64]
    if not slug:
        raise ValidationError({"slug": "The name gives no usable slug; give one explicitly."})
    if Workspace.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A workspace with the slug {slug!r} already exists."})
    workspace = Workspace(name=name, slug=slug)
    workspace._history_user = acting_user
    workspace.save()
    if acting_user is not None:
        do_set_membership(workspace, acting_user, Role.ADMIN, acting_user=acting_user)
    return workspace


@transaction.atomic
def do_set_membership(
    workspace: Workspace,
    user: AbstractBaseUser,
    role: Role,
    *,
    acting_user: AbstractBaseUser | None,
) -> Membership:
    """Give ``user`` ``role`` in ``workspace``, adding them if needed.

    Members log in through the admin, so they are made staff; what they may see and do
    there is decided by their roles (governance.admin_scoping), not by Django permissions.
    """
    membership = (
        Membership.objects.select_for_update().filter(workspace=workspace, user=user).first()
    )
    if membership is not None and membership.role == role:
        return membership
    if membership is not None:
        check_role_change(membership, role)
    else:
        membership = Membership(workspace=workspace, user=user)
    membership.role = role
    membership._history_user = acting_user
    membership.save()
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return membership


@transaction.atomic
def do_remove_membership(membership: Membership, *, acting_user: AbstractBaseUser | None) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.ADMIN:
        _ensure_another_admin(membership.workspace, excluding=membership)
    membership._history_user = acting_user
    membership.delete()


def get_or_create_user(email: str, *, password: str | None) -> tuple[AbstractBaseUser, bool]:
    """The account for ``email``; a new one needs an initial password."""
    email = User.objects.normalize_email(email.strip()).lower()
    existing = User.objects.filter(email__iexact=email).order_by("pk").first()
    if existing is not None:
        return existing, False
    if not password:
        raise ValidationError(
            {"password": f"No account uses {email} yet: give an initial password for it."}
        )
    user = User(username=email, email=email, is_staff=True)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user, True


def check_role_change(membership: Membership, role: Role) -> None:
    """Refuse to leave a workspace without an admin."""
    if membership.pk and membership.role == Role.ADMIN and role != Role.ADMIN:
        _ensure_another_admin(membership.workspace, excluding=membership)


def _ensure_another_admin(workspace: Workspace, *, excluding: Membership) -> None:
    others = Membership.objects.filter(workspace=workspace, role=Role.ADMIN).exclude(
        pk=excluding.pk
    )
    if not others.exists():
        raise ValidationError(
            f"{excluding.user} is the last admin of {workspace}; make someone else admin first."
        )
