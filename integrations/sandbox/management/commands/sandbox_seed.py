"""Create the demo HubSpot portal and Salesforce org in the sandbox."""

from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox.demo_data import build_demo_crm
from integrations.sandbox.models import Provider, SandboxAccount

PLURALS = {"company": "companies", "contact": "contacts", "deal": "deals"}
DEMO_NAMES = {Provider.HUBSPOT: "Demo HubSpot portal", Provider.SALESFORCE: "Demo Salesforce org"}


class Command(BaseCommand):
    help = "Create a realistic demo dataset in the sandbox CRMs (replacing an earlier one)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", choices=["hubspot", "salesforce", "both"], default="both")
        parser.add_argument(
            "--keep",
            action="store_true",
            help="keep an existing demo account instead of rebuilding it",
        )

    def handle(self, *args, provider: str, keep: bool, **options) -> None:
        providers = list(DEMO_NAMES) if provider == "both" else [Provider(provider)]
        for each in providers:
            existing = SandboxAccount.objects.filter(provider=each, name=DEMO_NAMES[each])
            if keep and existing.exists():
                self.stdout.write(f"{DEMO_NAMES[each]}: kept")
                continue
            existing.delete()
            try:
                summary = build_demo_crm(each, name=DEMO_NAMES[each])
            except ValueError as exc:
                raise CommandError(f"{DEMO_NAMES[each]}: {exc}") from exc
            counts = ", ".join(f"{n} {PLURALS[kind]}" for kind, n in summary.counts.items())
            self.stdout.write(
                self.style.SUCCESS(f"{DEMO_NAMES[each]} ({summary.account.external_id}): {counts}")
            )
            for email, token in summary.tokens.items():
                self.stdout.write(f"  {email:<24} token {token}")
