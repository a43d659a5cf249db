"""Create the demo HubSpot portal and Salesforce org, and the demo model, in the sandbox."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox.demo_data import build_demo_crm
from integrations.sandbox.models import Provider, SandboxAccount
from integrations.sandbox.seed import ensure_rules_model_account
from integrations.sandbox.switch import require_enabled

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
        require_enabled("to seed the emulated CRMs")
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
        self._ensure_model()

    def _ensure_model(self) -> None:
        # Only the sandbox's own endpoint gets an account: a real provider's key must never
        # be copied into the sandbox's tables.
        if not settings.MODEL_BASE_URL.startswith(f"{settings.SANDBOX_URL}/"):
            self.stdout.write(
                f"Model: {settings.MODEL_BASE_URL} is not the sandbox; nothing seeded"
            )
            return
        if not settings.MODEL_API_KEY:
            self.stdout.write("Model: MODEL_API_KEY is empty (no model configured); nothing seeded")
            return
        account = ensure_rules_model_account(settings.MODEL_API_KEY)
        self.stdout.write(
            f"Sandbox model {settings.MODEL_NAME} ({account.get_model_mode_display()})"
        )
