"""Re-sign every audit chain with the first key of AUDIT_KEYS, so older keys can be removed."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import audit_keys
from audit.services import ChainNotVerified, chain_head, resign_chain
from governance.models import Workspace


class Command(BaseCommand):
    help = (
        "Re-sign each workspace's audit chain with the first key of AUDIT_KEYS, after checking "
        "it with the keys listed, so the older keys can then be removed. A chain that does not "
        "verify is left alone. Heads exported before no longer match: export them again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace.")

    def handle(self, *args, workspace: str | None, **options) -> None:
        workspaces = Workspace.objects.order_by("slug")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces:
                raise CommandError(f"No workspace with the slug {workspace!r}.")
        key_id = audit_keys()[0].id
        refused = 0
        for each in workspaces:
            try:
                resigned = resign_chain(each)
            except ChainNotVerified as exc:
                refused += 1
                for problem in exc.problems:
                    self.stderr.write(problem)
                self.stderr.write(
                    f"{each.slug}: not re-signed: its chain does not verify, and re-signing "
                    "would hide that"
                )
                continue
            if not resigned:
                self.stdout.write(f"{each.slug}: every event is signed with the first key already")
                continue
            head = chain_head(each)
            self.stdout.write(f"{each.slug}: re-signed {resigned} event(s) with key id {key_id}")
            self.stdout.write(f"head {each.slug} {head.sequence}:{head.hash}")
        if refused:
            raise CommandError(f"{refused} workspace(s) not re-signed; see the problems above.")
