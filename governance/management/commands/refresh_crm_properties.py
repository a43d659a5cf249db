"""Refresh the cached CRM property metadata of workspace connections."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import services
from governance.models import CrmProvider
from integrations.connections import ConnectionProblem
from integrations.crm.errors import CrmError
from integrations.models import Connection, ConnectionScope


class Command(BaseCommand):
    help = "Fetch each workspace connection's CRM property metadata (describe) and cache it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace.")
        parser.add_argument("--provider", choices=CrmProvider.values, help="Only this CRM.")

    def handle(self, *args, workspace: str | None, provider: str | None, **options) -> None:
        connections = Connection.objects.filter(scope=ConnectionScope.WORKSPACE).select_related(
            "workspace"
        )
        if workspace:
            connections = connections.filter(workspace__slug=workspace)
        if provider:
            connections = connections.filter(provider=provider)
        if not connections:
            raise CommandError("No workspace connection matches; connect a CRM first.")
        failed = 0
        # One connection failing must not keep the others stale, so report and go on.
        for connection in connections.order_by("workspace__slug", "provider"):
            where = f"{connection.workspace.slug} {connection.get_provider_display()}"
            try:
                summary = services.do_refresh_properties(connection, acting_user=None)
            except ConnectionProblem as exc:
                failed += 1
                self.stderr.write(f"{where}: {exc.message}")
            except CrmError as exc:  # str() keeps the CRM's status and error code
                failed += 1
                self.stderr.write(f"{where}: {exc}")
            else:
                self.stdout.write(f"{where}: {summary}")
        if failed:
            raise CommandError(f"{failed} connection(s) could not be refreshed.")
