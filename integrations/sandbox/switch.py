"""SANDBOX_ENABLED: off on a production site, so nothing serves, seeds or acts on the
emulated CRMs and model there by mistake."""

from django.conf import settings
from django.core.management.base import CommandError


def require_enabled(purpose: str) -> None:
    """Refuse a command that needs the sandbox when it is switched off."""
    if not settings.SANDBOX_ENABLED:
        raise CommandError(
            f"The sandbox is switched off (SANDBOX_ENABLED=false); set SANDBOX_ENABLED=true "
            f"{purpose}."
        )
