"""Connect the demo workspace to the demo CRMs, give the agent a policy and the template
workflows, and process a dozen sample calls, so the reviewer lands on real pending changes.

`make demo` runs it after `demo_setup` and `sandbox_seed --keep`. A second run finds the
calls processed and does nothing; `--reset` deletes them and everything they produced,
rebuilds the demo CRMs (so applied values go too) and starts over.
"""

import logging
import socket
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q

from crm_agents import tasks
from crm_agents.demo_calls import DemoCall, build_demo_calls
from crm_agents.demo_crm import DemoDataError
from crm_agents.models import (
    AgentRun,
    Call,
    CallSource,
    MatchChoice,
    RunStatus,
    Workflow,
    WriteMode,
)
from crm_agents.services import do_submit_call
from crm_agents.workflow_templates import do_create_workflow_from_template
from governance.management.commands.demo_setup import DEMO_PASSWORD
from governance.models import (
    CrmProperty,
    CrmProvider,
    ObjectScope,
    Policy,
    ReviewMode,
    Workspace,
    default_review_overrides,
)
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from governance.services import do_refresh_properties
from integrations.connections import ConnectionProblem
from integrations.crm.errors import CrmError
from integrations.crm.profiles import PROFILES
from integrations.crm.types import ObjectType, Provider
from integrations.models import Connection, ConnectionScope, Credentials
from integrations.oauth import OAuthFailed
from integrations.sandbox import seed
from integrations.sandbox.demo_data import demo_token
from integrations.sandbox.management.commands.sandbox_seed import DEMO_NAMES
from integrations.sandbox.models import SandboxUser
from integrations.sandbox.server import SandboxServerThread
from integrations.sandbox.switch import require_enabled
from integrations.services import connect_with_oauth_grant, connect_with_token

DEMO_SLUG = "demo"
WORKSPACE_ADMIN = "admin@demo.example"
REVIEWER = "revops@demo.example"
REP = "riley@demo.example"
CRM_ADMIN = "ops@seller.example"  # the demo CRMs' admin: the workspace connects as them
CRM_REP = "riley@seller.example"  # the rep in the demo CRMs: sees only their own records
REP_TOKEN_LIFETIME = timedelta(minutes=30)  # as the CRMs' OAuth access tokens; then refreshed
PROVIDERS = (CrmProvider.HUBSPOT, CrmProvider.SALESFORCE)
WRITABLE = {
    ObjectType.DEAL: ("next_step", "amount", "close_date", "pain_points", "forecast"),
    ObjectType.CONTACT: ("title", "phone"),
}
# Everything else waits for review; amount, close date and stage always do.
APPLIED_AT_ONCE = ("next_step", "pain_points")
# (template, the only rules kept, (key, name) when they differ from the template's)
WORKFLOWS = (
    ("next-steps", None, None),
    ("amount-close-date", None, None),
    ("contact-details", None, None),
    ("meddpicc", ["pain_points"], ("pain-points", "Pain points")),
)


# Per-request and per-task log lines; the summary says what happened.
NOISY_LOGGERS = ("django.request", "celery.app.trace", "httpx", "httpx2", "kombu.connection")


class Command(BaseCommand):
    help = "Connect the demo workspace to the demo CRMs, configure the agent, process calls."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="delete the demo calls and what they produced, rebuild the demo CRMs, rerun",
        )

    def handle(self, *args, reset: bool, **options) -> None:
        require_enabled("to run the demo on the emulated CRMs and model")
        workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
        if workspace is None:
            raise CommandError("There is no demo workspace: run `manage.py demo_setup` first.")
        processed = Call.objects.filter(workspace=workspace, source=CallSource.DEMO)
        if processed.exists() and not reset:
            self.stdout.write(
                f"{workspace} already has {processed.count()} processed demo calls: nothing "
                "to do (`manage.py demo_agent --reset` starts over)."
            )
            self._connect_rep_if_missing(workspace)
            self._where_to_look()
            return
        _check_crm_urls()
        with _sandbox_served(settings.SANDBOX_URL) as how:
            self.stdout.write(f"Sandbox CRMs: {how}")
            if reset:
                self._reset(workspace)
            admin, reviewer, rep = _user(WORKSPACE_ADMIN), _user(REVIEWER), _user(REP)
            for provider in PROVIDERS:
                self._configure(workspace, provider, admin, reviewer)
                self._connect_rep(workspace, provider, rep)
            try:
                demo_calls = build_demo_calls()
            except DemoDataError as exc:
                raise CommandError(str(exc)) from exc
            calls = [
                do_submit_call(workspace, demo.payload, source=CallSource.DEMO)[0]
                for demo in demo_calls
            ]
            with _quiet(options["verbosity"] < 2):
                failures = self._process(calls)
        self._summary(list(zip(calls, demo_calls, strict=True)), failures)

    # --- setting up -------------------------------------------------------------------------
    def _reset(self, workspace: Workspace) -> None:
        calls = Call.objects.filter(workspace=workspace, source=CallSource.DEMO)
        # Change sets outlive their runs (SET_NULL), so they go first, explicitly.
        ChangeSet.objects.filter(workspace=workspace, run__call__in=calls).delete()
        MatchChoice.objects.filter(workspace=workspace).delete()
        count = calls.count()
        calls.delete()
        self.stdout.write(f"Reset: {count} demo calls deleted; rebuilding the demo CRMs")
        call_command("sandbox_seed", stdout=self.stdout)

    def _configure(
        self,
        workspace: Workspace,
        provider: CrmProvider,
        admin: AbstractBaseUser,
        reviewer: AbstractBaseUser,
    ) -> None:
        try:
            connection = connect_with_token(
                workspace,
                provider,
                ConnectionScope.WORKSPACE,
                access_token=demo_token(provider, CRM_ADMIN),
                instance_url=_instance_url(provider),
                acting_user=admin,
            )
            refreshed = do_refresh_properties(connection, acting_user=admin)
        except (OAuthFailed, ConnectionProblem, CrmError) as exc:
            raise CommandError(
                f"{provider.label}: cannot connect as {CRM_ADMIN} ({exc}); run "
                "`manage.py sandbox_seed` to (re)build the demo CRMs."
            ) from exc
        _set_policy(connection, acting_user=reviewer)
        names = [_ensure_workflow(workspace, provider, *spec).name for spec in WORKFLOWS]
        self.stdout.write(
            f"{provider.label}: connected to {connection.crm_account_id} as {CRM_ADMIN} "
            f"(properties: {refreshed}); policy set; workflows: {', '.join(names)}"
        )

    def _connect_rep(
        self, workspace: Workspace, provider: CrmProvider, rep: AbstractBaseUser
    ) -> None:
        """The rep's own connection, which chat uses, so the rep's CRM permissions apply.

        Reps connect by OAuth: a HubSpot private-app token acts as no person, so chat could
        not tell whose deals are "mine". The demo CRM issues the grant its consent screen
        would, and the product identifies and stores it as after a real OAuth callback.
        """
        crm_user = SandboxUser.objects.filter(
            account__provider=provider, account__name=DEMO_NAMES[provider], email=CRM_REP
        ).first()
        if crm_user is None:
            raise CommandError(
                f"The demo {provider.label} has no user {CRM_REP}: run `manage.py sandbox_seed`."
            )
        token = seed.issue_token(crm_user, expires_in=REP_TOKEN_LIFETIME, refresh=True)
        try:
            connect_with_oauth_grant(
                workspace,
                provider,
                ConnectionScope.USER,
                credentials=Credentials(
                    token.access_token, token.refresh_token, token.expires_at.isoformat()
                ),
                instance_url=_instance_url(provider),
                acting_user=rep,
                user=rep,
            )
        except (OAuthFailed, CrmError) as exc:
            raise CommandError(
                f"{provider.label}: cannot connect {REP} as {CRM_REP} ({exc}); run "
                "`manage.py sandbox_seed` to (re)build the demo CRMs."
            ) from exc
        self.stdout.write(f"{provider.label}: {REP} connected for chat as {CRM_REP} (OAuth)")

    # --- processing -------------------------------------------------------------------------
    def _process(self, calls: list[Call]) -> dict[int, list[str]]:
        """Process every call here and now; a pipeline error is kept, not fatal, so one
        failing run does not hide what the others did."""
        failures: dict[int, list[str]] = {}
        with _tasks_in_process():
            for call in calls:
                try:
                    tasks.process_call.delay(call.pk)
                except Exception:  # reported in the summary
                    failures.setdefault(call.pk, []).append(traceback.format_exc())
                    # process_call stopped at the failing run: drive the ones it left queued.
                    for run in AgentRun.objects.filter(call=call, status=RunStatus.QUEUED):
                        try:
                            tasks.run_workflow.delay(run.pk)
                        except Exception:
                            failures[call.pk].append(traceback.format_exc())
        return failures

    # --- reporting --------------------------------------------------------------------------
    def _summary(
        self, processed: list[tuple[Call, DemoCall]], failures: dict[int, list[str]]
    ) -> None:
        calls = [call for call, _ in processed]
        runs = Counter(
            AgentRun.objects.filter(call__in=calls, is_test=False).values_list(
                "call_id", "provider", "status"
            )
        )
        proposals = Counter(
            ChangeProposal.objects.filter(change_set__run__call__in=calls).values_list(
                "change_set__run__call_id", "change_set__provider", "status"
            )
        )
        self.stdout.write(self.style.SUCCESS(f"\nProcessed {len(calls)} demo calls:"))
        for number, (call, demo) in enumerate(processed, start=1):
            self.stdout.write(f"{number:>2}. {call.title}: {demo.shows}")
            for provider in PROVIDERS:
                statuses = ", ".join(
                    f"{RunStatus(status).label.lower()} {n}"
                    for (call_id, crm, status), n in sorted(runs.items())
                    if (call_id, crm) == (call.pk, provider)
                )
                pending = proposals[(call.pk, provider, ProposalStatus.PENDING)]
                applied = proposals[(call.pk, provider, ProposalStatus.APPLIED)]
                self.stdout.write(
                    f"      {provider.label:<11} runs: {statuses or 'none'}; "
                    f"proposals: {pending} pending, {applied} applied"
                )
            for failure in failures.get(call.pk, []):
                self.stderr.write(self.style.ERROR(f"      pipeline error:\n{failure}"))
        totals: Counter[str] = Counter()
        for (_, _, status), n in runs.items():
            totals[status] += n
        self.stdout.write(
            "\nRuns: "
            + ", ".join(f"{RunStatus(s).label.lower()} {n}" for s, n in totals.most_common())
        )
        sets = ChangeSet.objects.filter(run__call__in=calls)
        self.stdout.write(
            f"Change sets waiting for review: "
            f"{sets.filter(status=SetStatus.PENDING_REVIEW).count()}, needing a choice of "
            f"record: {sets.filter(status=SetStatus.NEEDS_CHOICE).count()}"
        )
        self._where_to_look()

    def _connect_rep_if_missing(self, workspace: Workspace) -> None:
        """A demo database made before chat existed has no rep connections: add them."""
        rep = _user(REP)
        connected = set(
            Connection.objects.filter(
                workspace=workspace, scope=ConnectionScope.USER, user=rep
            ).values_list("provider", flat=True)
        )
        missing = [provider for provider in PROVIDERS if provider not in connected]
        if not missing:
            return
        _check_crm_urls()
        with _sandbox_served(settings.SANDBOX_URL):
            for provider in missing:
                self._connect_rep(workspace, provider, rep)

    def _where_to_look(self) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in as {REVIEWER} (password {DEMO_PASSWORD}) at "
                "http://127.0.0.1:8000/admin/ and open Change sets; as "
                f"{REP} and open Chat."
            )
        )


def _set_policy(connection: Connection, *, acting_user: AbstractBaseUser) -> Policy:
    """Deals and contacts writable through a short whitelist; companies read only; stage
    changes and closed deals off limits; next steps and pains applied at once, the rest
    (amount and close date above all) reviewed."""
    profile = PROFILES[Provider(connection.provider)]
    wanted = Q(pk__in=[])
    for object_type, fields in WRITABLE.items():
        names = [profile.native_field(object_type, field) for field in fields]
        wanted |= Q(object_type=object_type, name__in=names)
    writable = list(CrmProperty.objects.filter(wanted, connection=connection, missing=False))
    expected = sum(len(fields) for fields in WRITABLE.values())
    if len(writable) != expected:
        raise CommandError(
            f"The demo {connection.get_provider_display()} lacks some of the demo's fields "
            f"(found {len(writable)} of {expected}): rebuild it with `manage.py sandbox_seed`."
        )
    policy = Policy.objects.filter(
        workspace=connection.workspace, provider=connection.provider
    ).first() or Policy(workspace=connection.workspace, provider=connection.provider)
    policy.company_scope = ObjectScope.READ
    policy.contact_scope = ObjectScope.READ_WRITE
    policy.deal_scope = ObjectScope.READ_WRITE
    policy.allow_stage_change = False
    policy.allow_update_closed = False
    policy.review_default = ReviewMode.REVIEW
    policy.review_overrides = default_review_overrides() | dict.fromkeys(
        APPLIED_AT_ONCE, ReviewMode.AUTO.value
    )
    policy._history_user = acting_user
    with transaction.atomic():
        policy.save()
        policy.write_properties.set(writable)
    return policy


@transaction.atomic
def _ensure_workflow(
    workspace: Workspace,
    provider: CrmProvider,
    template: str,
    fields: list[str] | None,
    renamed: tuple[str, str] | None,
) -> Workflow:
    key, name = renamed or (template, None)
    existing = Workflow.objects.filter(workspace=workspace, provider=provider, key=key).first()
    if existing is not None:
        return existing
    workflow = do_create_workflow_from_template(workspace, provider, template, fields=fields)
    workflow.key, workflow.name = key, name or workflow.name
    # The demo's workflows run on internal calls too, so the internal call's runs show the
    # matcher's reason for matching nothing.
    workflow.trigger_external_attendees = False
    workflow.save(update_fields=["key", "name", "trigger_external_attendees", "updated_at"])
    if template == "contact-details":
        # Every demo contact already has a title and phone: a new one said on a call
        # replaces the old one (after review) instead of being skipped as not empty.
        for rule in workflow.rules.all():
            rule.write_mode = WriteMode.OVERWRITE
            rule.save(update_fields=["write_mode"])
    return workflow


def _user(email: str) -> AbstractBaseUser:
    user = get_user_model().objects.filter(email__iexact=email).first()
    if user is None:
        raise CommandError(f"There is no {email}: run `manage.py demo_setup` first.")
    return user


def _instance_url(provider: CrmProvider) -> str | None:
    return settings.SALESFORCE_LOGIN_URL if provider == CrmProvider.SALESFORCE else None


def _check_crm_urls() -> None:
    for name in ("HUBSPOT_API_URL", "SALESFORCE_LOGIN_URL"):
        value = getattr(settings, name)
        if value != settings.SANDBOX_URL:
            raise CommandError(
                f"{name} is {value}, not the sandbox ({settings.SANDBOX_URL}): the demo "
                f"connects to the sandbox CRMs only. Unset {name} to run it."
            )


@contextmanager
def _sandbox_served(url: str) -> Iterator[str]:
    """Use the sandbox already answering at ``url``, or serve it from this process (at
    `make demo` time honcho has not started `runsandbox` yet)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        socket.create_connection((host, port), timeout=1).close()
        answering = True
    except OSError:
        answering = False
    if answering:
        yield f"using the one answering at {url}"
        return
    try:
        server = SandboxServerThread(host, port)
    except OSError as exc:
        raise CommandError(
            f"Nothing answers at {url}, and it cannot be served here: {exc}"
        ) from exc
    server.start()
    try:
        yield f"served by this command at {url} while it runs"
    finally:
        server.stop()


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS] if enabled else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _tasks_in_process() -> Iterator[None]:
    """Run the Celery tasks here whatever the broker, so the summary below is final."""
    from config.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = eager
