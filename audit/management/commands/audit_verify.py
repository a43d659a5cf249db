"""Check every workspace's audit chain: each event's keyed hash, the links, and the head."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import AuditEvent, UnknownAuditKey, audit_keys
from audit.services import ChainCheck, chain_head, check_chain
from governance.models import Workspace


class Command(BaseCommand):
    help = (
        "Verify each workspace's audit chain: every event's HMAC under the AUDIT_KEYS key "
        "its key id names, every link, and the head; exit 1 on any problem. --print-head "
        "prints each chain's head to keep outside the database; --anchor checks that a head "
        "printed earlier is still in the chain, which catches the newest events cut together "
        "with the head."
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
        try:
            current, *older = (key.id for key in audit_keys())
        except UnknownAuditKey as exc:
            raise CommandError(str(exc)) from None
        # Key ids only: they name a key without revealing it.
        self.stdout.write(f"AUDIT_KEYS: {', '.join([f'{current} (signs new events)', *older])}")
        problems = 0
        for each in workspaces:
            check = check_chain(each)
            found = check.problems
            if anchor:
                found += self._check_anchor(each, anchor)
            problems += len(found)
            for problem in found:
                self.stderr.write(problem)
            verdict = f"{len(found)} problem(s)" if found else "OK"
            self.stdout.write(
                f"{each.slug}: {verdict} ({check.events} events){_keys_in_use(check)}"
            )
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


def _keys_in_use(check: ChainCheck) -> str:
    if not check.key_ids:
        return ""
    used = ", ".join(f"{key_id or '(none)'} on {count}" for key_id, count in check.key_ids.items())
    return f", key ids: {used}"
