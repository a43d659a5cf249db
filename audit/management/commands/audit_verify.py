"""Check every workspace's audit chain for edited and deleted events."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import AuditEvent
from audit.services import verify_chain
from governance.models import Workspace


class Command(BaseCommand):
    help = "Verify the hash chain of each workspace's audit events; exit 1 on any problem."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace.")

    def handle(self, *args, workspace: str | None, **options) -> None:
        workspaces = Workspace.objects.order_by("slug")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces:
                raise CommandError(f"No workspace with the slug {workspace!r}.")
        problems = 0
        for each in workspaces:
            found = verify_chain(each)
            problems += len(found)
            for problem in found:
                self.stderr.write(problem)
            if not found:
                count = AuditEvent.objects.filter(workspace=each).count()
                self.stdout.write(f"{each.slug}: OK ({count} events)")
        if problems:
            raise CommandError(f"{problems} problem(s) in the audit chain.")
