"""Run the reconciler once: what Celery beat does every RECONCILE_EVERY_SECONDS."""

from django.core.management.base import BaseCommand

from crm_agents.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Send again, take over or fail with a reason whatever owed work lost its message or "
        "its worker (calls without runs, queued or stuck runs, approved or stuck applies)."
    )

    def handle(self, *args, **options) -> None:
        done = reconcile()
        if not done:
            self.stdout.write("Nothing owed was stuck.")
            return
        for kind, count in sorted(done.items()):
            self.stdout.write(f"{kind.replace('_', ' ')}: {count}")
