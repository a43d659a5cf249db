"""Run scenario files against the sandbox CRMs (shared/scenarios/README.md).

Exit codes: 0 when every check passed (or without --check), 1 when a check failed with
--check, 2 when a file is malformed or cannot be read (the message names the bad key).
"""

import contextlib
import json
import logging

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm_agents.scenarios import runner
from crm_agents.scenarios.loader import load
from crm_agents.scenarios.spec import ScenarioError
from integrations.sandbox.switch import require_enabled


class Command(BaseCommand):
    help = "Run scenario files end to end against the sandbox CRMs and report (or check) them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Scenario JSON files.")
        parser.add_argument(
            "--provider",
            choices=["hubspot", "salesforce", "both"],
            help="Run on this CRM (both: once on each), whatever the files say.",
        )
        parser.add_argument(
            "--check", action="store_true", help="Exit 1 when an expectation fails."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the reports as JSON on stdout."
        )

    def handle(self, *args, **options) -> None:
        require_enabled("to run scenarios on the emulated CRMs and model")
        scenarios = []
        for path in options["paths"]:
            try:
                scenarios.append(load(path))
            except ScenarioError as exc:
                raise CommandError(f"{path}: {exc}", returncode=2) from exc
        with _quiet(options["verbosity"] < 3):
            reports = runner.run_all(scenarios, options["provider"])
        if options["json"]:
            body = reports[0] if len(reports) == 1 else reports
            self.stdout.write(json.dumps(body, indent=2, ensure_ascii=False))
        else:
            for report in reports:
                self._summary(report, options["verbosity"])
        failed = [r for r in reports if not r["passed"]]
        if options["check"] and failed:
            names = ", ".join(f"{r['scenario']} ({r['provider']})" for r in failed)
            raise CommandError(
                f"{len(failed)} of {len(reports)} runs failed: {names}", returncode=1
            )

    def _summary(self, report: dict, verbosity: int) -> None:
        style = self.style.SUCCESS if report["passed"] else self.style.ERROR
        checks = report["checks"]
        bad = [c for c in checks if not c["ok"]]
        self.stdout.write(
            style(f"{'PASS' if report['passed'] else 'FAIL'} {report['scenario']}")
            + f" ({report['provider']}): {len(checks) - len(bad)}/{len(checks)} checks ok"
        )
        if verbosity >= 2:
            for run in report["runs"]:
                fields = ", ".join(f"{p['field']} {p['status']}" for p in run["proposals"])
                self.stdout.write(
                    f"  {run['call']}/{run['workflow']}: {run['outcome']}"
                    f" on {run['record'] or '-'}" + (f" ({fields})" if fields else "")
                )
        for check in bad:
            self.stdout.write(f"  x {check['check']}: {check['detail']}")


# Per-request and per-task log lines of the run; the report says what happened.
NOISY_LOGGERS = ("django.request", "celery.app.trace", "httpx", "httpx2", "kombu.connection")


@contextlib.contextmanager
def _quiet(enabled: bool):
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS] if enabled else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
