"""Create (or reset) the demo workspace and its people, and print their logins."""

from django.core.management.base import BaseCommand
from django.db import transaction

from governance import services
from governance.models import Role, Workspace

DEMO_PASSWORD = "steward-demo-2026"

DEMO_PEOPLE = [
    ("admin@demo.example", Role.ADMIN, "Avery Admin"),
    ("revops@demo.example", Role.REVOPS, "Robin RevOps"),
    ("riley@demo.example", Role.MEMBER, "Riley Rep"),
    ("sam@demo.example", Role.MEMBER, "Sam Rep"),
]
# A second customer, so the demo shows that workspaces never see each other.
OTHER_PEOPLE = [("admin@globex.example", Role.ADMIN, "Gale Globex")]


class Command(BaseCommand):
    help = "Create or reset the demo workspaces and users, and print their logins."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        demo = self._workspace("Demo Co", "demo")
        other = self._workspace("Globex (another customer)", "globex")
        rows = [self._person(demo, *person) for person in DEMO_PEOPLE]
        rows += [self._person(other, *person) for person in OTHER_PEOPLE]

        self.stdout.write(self.style.SUCCESS("Demo ready. Log in at http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"{'login':<24} {'password':<20} {'workspace':<28} role")
        for login, workspace, role in rows:
            self.stdout.write(f"{login:<24} {DEMO_PASSWORD:<20} {workspace:<28} {role}")

    def _workspace(self, name: str, slug: str) -> Workspace:
        existing = Workspace.objects.filter(slug=slug).first()
        return existing or services.do_create_workspace(name, slug=slug, acting_user=None)

    def _person(
        self, workspace: Workspace, email: str, role: Role, full_name: str
    ) -> tuple[str, str, str]:
        user, _ = services.get_or_create_user(email, password=DEMO_PASSWORD)
        first, _, last = full_name.partition(" ")
        user.first_name, user.last_name = first, last
        # Re-running the demo resets the password, so the printed logins always work.
        user.set_password(DEMO_PASSWORD)
        user.save()
        services.do_set_membership(workspace, user, role, acting_user=None)
        return email, workspace.name, role.label
