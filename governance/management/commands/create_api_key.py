"""Issue a workspace API key and print it, once."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.api_keys import do_create_api_key
from governance.models import Workspace


class Command(BaseCommand):
    help = (
        "Create an API key for a workspace (it acts with the RevOps role there) and print "
        "it. Only its hash is stored: the key cannot be shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace", metavar="WORKSPACE_SLUG")
        parser.add_argument("name", help="What will use the key, e.g. 'Gong webhook'.")

    def handle(self, *args, workspace: str, name: str, **options) -> None:
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"No workspace with the slug {workspace!r}.")
        try:
            issued = do_create_api_key(found, name, acting_user=None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"API key {issued.credential} for {found.slug}; send it as "
            "'Authorization: Api-Key <key>'. Copy it now, it cannot be shown again:"
        )
        self.stdout.write(issued.secret)
