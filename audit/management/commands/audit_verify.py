"""Check every workspace's audit chain for edited and deleted events."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import AuditEvent
from audit.services import chain_head, verify_chain
from governance.models import Workspace


class Command(BaseCommand):
    help = (
        "Verify the hash chain of each workspace's audit events; exit 1 on any problem. "
        "--print-head prints each chain's head to keep outside the database; --anchor checks "
        "that a head printed earlier is still in the chain, which catches a chain rewritten "
        "together with its head."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace.")
        parser.add_argument(
            "--print-head",
            action="store_true",
            help="Also print 'head SLUG SEQUENCE:HASH' for each chain's newest event.",
        )
        parser.add_argument(
            "--anchor",
            metavar="SEQUENCE:HASH",
            help="With --workspace: the event SEQUENCE must still have this HASH.",
        )

    def handle(
        self, *args, workspace: str | None, print_head: bool, anchor: str | None, **options
    ) -> None:
        if anchor and not workspace:
            raise CommandError("--anchor needs --workspace: each chain has its own head.")
        workspaces = Workspace.objects.order_by("slug")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces:
                raise CommandError(f"No workspace with the slug {workspace!r}.")
        problems = 0
        for each in workspaces:
            found = verify_chain(each)
            if anchor:
                found += self._check_anchor(each, anchor)
            problems += len(found)
            for problem in found:
                self.stderr.write(problem)
            if not found:
                count = AuditEvent.objects.filter(workspace=each).count()
                self.stdout.write(f"{each.slug}: OK ({count} events)")
            if print_head:
                head = chain_head(each)
                sequence, digest = (head.sequence, head.hash) if head else (0, "-")
                self.stdout.write(f"head {each.slug} {sequence}:{digest}")
        if problems:
            raise CommandError(f"{problems} problem(s) in the audit chain.")

    def _check_anchor(self, workspace: Workspace, anchor: str) -> list[str]:
        sequence, _, digest = anchor.partition(":")
        if not sequence.isdigit() or len(digest) != 64:
            raise CommandError("--anchor takes SEQUENCE:HASH, as --print-head prints them.")
        stored = (
            AuditEvent.objects.filter(workspace=workspace, sequence=int(sequence))
            .values_list("hash", flat=True)
            .first()
        )
        if stored == digest:
            return []
        return [
            f"{workspace.slug} #{sequence}: does not match the anchored head "
            f"({'missing' if stored is None else 'different hash'}), the chain was rewritten"
        ]
