from django.apps import AppConfig
from django.conf import settings
from django.core import checks

# Settings whose defaults point at the sandbox (config/settings.py).
SANDBOX_DEFAULTED = [
    "HUBSPOT_API_URL",
    "HUBSPOT_AUTHORIZE_URL",
    "SALESFORCE_LOGIN_URL",
    "MODEL_BASE_URL",
]


class SandboxConfig(AppConfig):
    name = "integrations.sandbox"
    label = "sandbox"
    verbose_name = "CRM sandbox"

    def ready(self) -> None:
        checks.register(check_switched_off_sandbox_is_not_used)


def check_switched_off_sandbox_is_not_used(app_configs: object, **kwargs: object) -> list:
    """A site that switched the sandbox off but still talks to it was most likely deployed
    without the real CRM and model addresses (`migrate` and `check` show this)."""
    if settings.SANDBOX_ENABLED:
        return []
    sandbox = settings.SANDBOX_URL
    pointing = [name for name in SANDBOX_DEFAULTED if getattr(settings, name).startswith(sandbox)]
    if not pointing:
        return []
    return [
        checks.Warning(
            f"SANDBOX_ENABLED is off, but {', '.join(pointing)} still point at the "
            f"sandbox ({sandbox}).",
            hint="Set them to the real HubSpot, Salesforce and model endpoints "
            "(README, Configuration).",
            id="sandbox.W001",
        )
    ]
