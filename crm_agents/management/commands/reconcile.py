"""Run the reconciler once (what Celery beat does every RECONCILE_EVERY_SECONDS), or, with
``--every``, keep running it: the embedded set-up has no beat."""

import time

from django.core.management.base import BaseCommand, CommandParser

from crm_agents.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Send again, take over or fail with a reason whatever owed work lost its message or "
        "its worker (calls without runs, queued or stuck runs, approved or stuck applies)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=int,
            metavar="SECONDS",
            help="Run again every SECONDS until stopped (Ctrl-C), instead of once.",
        )

    def handle(self, *args, every: int | None = None, **options) -> None:
        if every is not None and every < 1:
            self.stderr.write("--every needs a number of seconds of at least 1")
            raise SystemExit(2)
        try:
            while True:
                self._once(quiet=every is not None)
                if every is None:
                    return
                time.sleep(every)
        except KeyboardInterrupt:
            pass

    def _once(self, *, quiet: bool) -> None:
        done = reconcile()
        if not done:
            if not quiet:
                self.stdout.write("Nothing owed was stuck.")
            return
        for kind, count in sorted(done.items()):
            self.stdout.write(f"{kind.replace('_', ' ')}: {count}")
