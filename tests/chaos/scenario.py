"""The chaos run: the production process set on PostgreSQL and Redis, calls through the
API, approvals through the API, and every kind of trouble a deployment meets.

``Harness`` owns the processes and the Redis database (and kills them all on exit, also on
failure); ``Chaos`` drives one scenario against a built world:

1. the CRMs answer with 5xx, timeouts, dropped connections and a little latency;
2. half the calls are submitted; while a run is RUNNING the runs worker's pool processes
   are SIGKILLed (their tasks are redelivered);
3. a rate-limit window: HubSpot answers 429 and Salesforce REQUEST_LIMIT_EXCEEDED;
4. while work is queued the broker's queues are emptied (the lists and the unacked set, as
   a Redis restart without persistence would);
5. while a proposal is APPLYING the whole apply worker is SIGKILLed, then restarted as a
   supervisor would;
6. the other calls are submitted, and work goes on under the moderate faults until half
   the runs are done (the benchmark: all its runs drain first, then the last tenth of
   its calls arrives, so there is work in flight for the outage);
7. the CRMs fail completely for longer than the retry budget, then come back healthy;
8. the reconciler is given a bounded time to settle everything.

All along, change sets waiting for review are approved through the API, and before every
few approvals a colleague edits the deal's amount in the CRM (another CRM user, the real
client), so conflicts happen.
"""

import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from django.db.models import Q
from django.utils import timezone

from crm_agents.models import AgentRun, Call
from governance.review_models import ChangeProposal, ChangeSet
from integrations.crm.clients import build_client
from integrations.sandbox.models import SandboxAccount
from integrations.sandbox.server import free_port
from tests.chaos.checks import NOT_DECIDED, WORKING_PROPOSAL, WORKING_RUN, WORKING_SET
from tests.chaos.processes import ROOT, ProcessSet, base_env, http_up, procfile_commands, wait_for
from tests.chaos.world import World, call_payload, secrets_env

QUEUES = ("runs", "apply", "reconcile")
# kombu's Redis transport: one list per queue and priority, and the unacked bookkeeping.
PRIORITY_SEP = "\x06\x16"
UNACKED_KEYS = ("unacked", "unacked_index")


@dataclass
class ChaosConfig:
    calls: int = 40
    # Moderate faults on every CRM request (fractions), and how long a timeout hangs.
    error_rate: float = 0.05
    timeout_rate: float = 0.03
    drop_rate: float = 0.05
    latency_ms: int = 30
    crm_timeout: int = 3
    timeout_seconds: float = 5.0  # above crm_timeout: the client gives up first
    rate_limit_seconds: float = 5.0
    outage_seconds: float = 20.0  # above the retry budget and REQUEUE_AFTER_SECONDS
    faulty_phase_seconds: float = 25.0  # work under moderate faults before the outage
    human_edit_every: int = 3  # every third change set gets a human edit before approval
    first_batch: float = 0.5
    # SIGKILL the workers mid-run and mid-apply and empty the broker once (the benchmark's
    # --calm run leaves them out, with the faults, to measure the work alone).
    kills_and_blips: bool = True
    runs_concurrency: int = 2
    apply_concurrency: int = 1
    web_concurrency: int = 2
    step_timeout: float = 30.0
    settle_timeout: float = 120.0
    # The benchmark lets the runs drain before the outage, so it does not hide throughput.
    drain_before_outage: bool = False
    drain_timeout: float = 600.0
    product: dict[str, str] = field(
        default_factory=lambda: {
            "CELERY_TASK_SOFT_TIME_LIMIT": "20",
            "CELERY_TASK_TIME_LIMIT": "30",
            "WORK_LEASE_SECONDS": "40",
            "REQUEUE_AFTER_SECONDS": "10",
            "RECONCILE_EVERY_SECONDS": "5",
            "TASK_MAX_RETRIES": "2",
            "RETRY_BASE_SECONDS": "1",
            "RETRY_MAX_DELAY_SECONDS": "10",
            "CRM_OUTAGE_LIMIT_SECONDS": "600",
        }
    )

    def product_env(self) -> dict[str, str]:
        return {**self.product, "CRM_TIMEOUT": str(self.crm_timeout)}


def queue_keys() -> list[str]:
    return [
        queue + suffix
        for queue in QUEUES
        for suffix in ["", *(f"{PRIORITY_SEP}{p}" for p in range(1, 10))]
    ]


class Harness:
    """The processes and the Redis database of one chaos run; everything ends on exit."""

    def __init__(self, config: ChaosConfig, database_url: str, redis_url: str) -> None:
        self.config = config
        self.database_url = database_url
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.workdir = Path(tempfile.mkdtemp(prefix="crm-steward-chaos-"))
        self.procs = ProcessSet(self.workdir, {})
        self.sandbox_url = ""
        self.web_url = ""

    def __enter__(self) -> "Harness":
        # A CI runner stops a job with SIGTERM: turn it into an exception, so __exit__
        # still kills every process group.
        self._sigterm = signal.signal(signal.SIGTERM, _terminated)
        self.redis.flushdb()  # our own database number only
        self.procs.env = base_env(
            {
                **self.config.product_env(),
                **secrets_env(),
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "DEBUG": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LOG_LEVEL": "INFO",
                "CELERY_BEAT_SCHEDULE_FILENAME": str(self.workdir / "celerybeat-schedule"),
                "WEB_CONCURRENCY": str(self.config.web_concurrency),
                "RUNS_CONCURRENCY": str(self.config.runs_concurrency),
                "APPLY_CONCURRENCY": str(self.config.apply_concurrency),
            }
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.procs.stop_all()
        with contextlib.suppress(redis.RedisError):
            self.redis.flushdb()
        signal.signal(signal.SIGTERM, self._sigterm)

    def start_sandbox(self) -> str:
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.procs.env["SANDBOX_URL"] = self.sandbox_url
        self.procs.add(
            "sandbox",
            f"{sys.executable} {ROOT / 'manage.py'} runsandbox --host 127.0.0.1 --port {port}",
            {"SANDBOX_ENABLED": "true"},
        )
        self._wait_up("the sandbox", lambda: http_up(f"{self.sandbox_url}/services/data/"))
        return self.sandbox_url

    def start_product(self, world: World) -> str:
        """gunicorn, the runs and apply workers and beat, as the Procfile starts them."""
        self.procs.env["MODEL_API_KEY"] = world.model_key
        port = free_port()
        self.web_url = f"http://127.0.0.1:{port}"
        commands = procfile_commands()
        self.procs.add("web", commands["web"], {"PORT": str(port)})
        self.procs.add("runs", _with_concurrency(commands["runs"], self.config.runs_concurrency))
        self.procs.add("apply", _with_concurrency(commands["apply"], self.config.apply_concurrency))
        self.procs.add("beat", commands["beat"])
        self._wait_up("web", lambda: http_up(f"{self.web_url}/healthz"))
        for name in ("runs", "apply"):
            self._wait_up(name, lambda name=name: self.procs[name].log_contains(" ready."))
        return self.web_url

    def _wait_up(self, name: str, ready) -> None:
        """Wait for ``name`` to be ready; fail at once if any process exits meanwhile."""

        def up() -> bool:
            dead = self.procs.dead()
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while starting (logs below)")
            return ready()

        wait_for(up, timeout=40, what=name)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def _with_concurrency(command: str, concurrency: int) -> str:
    """A literal pool size replaced by ours (the Procfile's ${RUNS_CONCURRENCY:-N} form
    reads the environment instead)."""
    return re.sub(r"--concurrency[ =]\d+", f"--concurrency {concurrency}", command)


class Chaos:
    def __init__(
        self, config: ChaosConfig, harness: Harness, world: World, started: float | None = None
    ) -> None:
        self.config = config
        self.harness = harness
        self.world = world
        self.procs = harness.procs
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Api-Key {world.api_key}"
        self.started = started or time.monotonic()
        self.held_down: set[str] = set()  # killed on purpose: no supervisor restart yet
        self.timeline: list[str] = []
        self.injected: Counter = Counter()  # what the driver did to the system
        self.missed: list[str] = []  # chaos steps that found no moment to strike
        self.posted: Counter = Counter()  # answers to POST /calls/
        self.accepted: set[str] = set()
        self.approvals: Counter = Counter()
        self.handled_sets: set[int] = set()
        self.seen_sets = 0
        self.killed_runs: list[int] = []
        self.killed_proposals: list[int] = []
        self.next_call = 0
        self.last_tick = 0.0
        self.restarts: Counter = Counter()
        self.phase_marks: dict[str, float] = {}
        self.outage_window: tuple = ()
        # (when, runs queued): the backlog the benchmark reads auto-apply delays against.
        self.backlog: list[tuple] = []
        self.drained_calls = 0  # calls whose runs had all finished at "runs drained"

    # --- the scenario ------------------------------------------------------------------

    def run(self) -> None:
        self.moderate_faults()
        self.submit_calls(max(1, int(self.config.calls * self.config.first_batch)))
        if self.config.kills_and_blips:
            self.kill_mid_run()
        self.rate_limit_window()
        if self.config.kills_and_blips:
            self.empty_broker_queues()
            self.kill_mid_apply()
        if self.config.drain_before_outage:
            self.wait_runs_drained()
            self.submit_calls(self.config.calls - self.next_call)  # in flight for the outage
        else:
            self.submit_calls(self.config.calls - self.next_call)
            self.wait_progress(0.5, self.config.faulty_phase_seconds)
        self.outage()
        self.settle()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def log(self, message: str) -> None:
        line = f"[{self.elapsed():6.1f}s] {message}"
        self.timeline.append(line)
        print(line, flush=True)

    # --- faults ------------------------------------------------------------------------

    def crm_accounts(self):
        return SandboxAccount.objects.filter(pk__in=[a.pk for a in self.world.accounts])

    def set_faults(self, **fields: object) -> None:
        self.crm_accounts().update(**fields)

    def moderate_faults(self) -> None:
        self.set_faults(
            error_rate=self.config.error_rate,
            timeout_rate=self.config.timeout_rate,
            timeout_seconds=self.config.timeout_seconds,
            drop_rate=self.config.drop_rate,
            latency_ms=self.config.latency_ms,
        )
        self.log(
            f"faults on: 5xx {self.config.error_rate:.0%}, timeouts {self.config.timeout_rate:.0%}"
            f" ({self.config.timeout_seconds:.0f} s), drops {self.config.drop_rate:.0%}, "
            f"latency {self.config.latency_ms} ms"
        )

    # --- calls and reviews ---------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response | None:
        try:
            return self.session.request(
                method, f"{self.harness.web_url}/api/v1/{path}", timeout=20, **kwargs
            )
        except requests.RequestException as exc:
            self.injected["api errors seen by the driver"] += 1
            self.log(f"API {method} {path} failed: {exc}")
            return None

    def submit_calls(self, count: int) -> None:
        first = self.next_call
        for _ in range(count):
            i = self.next_call
            self.next_call += 1
            payload = call_payload(i)
            for _attempt in range(3):
                response = self.api("post", "calls/", json=payload)
                if response is not None:
                    break
                time.sleep(0.5)
            self.posted[response.status_code if response is not None else "no answer"] += 1
            if response is not None and response.status_code in (200, 202):
                self.accepted.add(payload["external_id"])
            elif response is not None:
                self.log(
                    f"POST calls/ {payload['external_id']}: {response.status_code} "
                    f"{response.text[:200]}"
                )
            self.tick()
        if count:
            self.log(f"submitted calls {first}..{self.next_call - 1} through the API")
        if self.next_call and not self.accepted:
            raise RuntimeError(f"the API accepted none of the calls: {dict(self.posted)}")

    def tick(self, force: bool = False) -> None:
        """Keep the supervisors' and reviewers' work going: restart crashed processes,
        approve what waits for review (after a human edit, now and then)."""
        now = time.monotonic()
        if not force and now - self.last_tick < 0.5:
            return
        self.last_tick = now
        for name in set(self.procs.dead()) - self.held_down:
            self.restarts[name] += 1
            self.log(f"{name} exited on its own ({self.procs[name].popen.returncode}): restarted")
            self.procs[name].start()
        self.backlog.append(
            (
                timezone.now(),
                AgentRun.objects.filter(
                    workspace=self.world.workspace, status="queued", is_test=False
                ).count(),
            )
        )
        self.approve_pending()

    def approve_pending(self) -> None:
        response = self.api("get", "change-sets/?status=pending_review&limit=500")
        if response is None or response.status_code != 200:
            return
        for item in response.json().get("results", []):
            if item["id"] in self.handled_sets:
                continue
            self.seen_sets += 1
            if self.config.human_edit_every and self.seen_sets % self.config.human_edit_every == 0:
                self.human_edit(item["provider"], item["record_id"])
            answer = self.api("post", f"change-sets/{item['id']}/approve/")
            if answer is None:
                continue
            self.approvals[answer.status_code] += 1
            self.handled_sets.add(item["id"])
            if answer.status_code != 200:
                self.log(f"approve set {item['id']}: {answer.status_code} {answer.text[:200]}")

    def human_edit(self, provider: str, record_id: str) -> None:
        crm = self.world.crms[provider]
        client = build_client(
            provider,
            base_url=self.harness.sandbox_url,
            access_token=crm.human_token,
            timeout=self.config.crm_timeout + 2,
        )
        value = str(90_000 + self.seen_sets)
        for _attempt in range(3):
            try:
                client.update("deal", record_id, {crm.native("amount"): value})
            except Exception:  # the CRM's faults hit people too; they try again
                self.injected["human edits that failed"] += 1
                continue
            self.injected["human edits"] += 1
            return

    # --- the chaos steps ---------------------------------------------------------------

    def wait(self, predicate, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.tick()
            time.sleep(0.05)
        return None

    def sleep(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def kill_mid_run(self) -> None:
        running = self.wait(
            lambda: list(
                AgentRun.objects.filter(
                    workspace=self.world.workspace, status="running"
                ).values_list("pk", flat=True)
            ),
            self.config.step_timeout,
        )
        children = self.procs["runs"].children()
        if not running or not children:
            self.missed.append(f"kill mid-run: running={running} pool={children}")
            self.log("kill mid-run: MISSED (no run running, or no pool process)")
            return
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed_runs = running
        self.injected["runs worker pool processes SIGKILLed"] += len(children)
        self.log(f"SIGKILL runs worker pool {children} while runs {running} were running")

    def queued_messages(self) -> int:
        return sum(self.harness.redis.llen(key) for key in queue_keys())

    def empty_broker_queues(self) -> None:
        queued = self.wait(self.queued_messages, 5)
        if not queued:
            # Nothing waiting: give the runs worker more than it can take at once.
            self.submit_calls(min(4, max(0, self.config.calls - self.next_call)))
            queued = self.wait(self.queued_messages, 5)
        if not queued:
            self.missed.append("empty the broker: nothing was queued")
            self.log("empty the broker: MISSED (nothing queued)")
            return
        unacked = self.harness.redis.hlen("unacked")
        self.harness.redis.delete(*queue_keys(), *UNACKED_KEYS)
        self.injected["broker messages deleted (queued)"] += queued
        self.injected["broker messages deleted (unacked)"] += unacked
        self.log(f"emptied the broker: {queued} queued and {unacked} unacked messages deleted")

    def rate_limit_window(self) -> None:
        if not self.config.rate_limit_seconds:
            return
        saved = {a.pk: (a.burst_limit, a.daily_limit) for a in self.crm_accounts()}
        self.crm_accounts().filter(provider="hubspot").update(burst_limit=2)
        self.crm_accounts().filter(provider="salesforce").update(daily_limit=1)
        self.log(
            f"rate limits for {self.config.rate_limit_seconds:.0f} s: 429 and "
            "REQUEST_LIMIT_EXCEEDED"
        )
        self.sleep(self.config.rate_limit_seconds)
        for pk, (burst, daily) in saved.items():
            SandboxAccount.objects.filter(pk=pk).update(burst_limit=burst, daily_limit=daily)
        self.log("rate limits lifted")

    def kill_mid_apply(self) -> None:
        # Slow CRM answers keep an apply in flight long enough to be caught.
        self.set_faults(latency_ms=1500)
        applying = self.wait(
            lambda: list(
                ChangeProposal.objects.filter(
                    workspace=self.world.workspace, status="applying"
                ).values_list("pk", flat=True)
            ),
            self.config.step_timeout,
        )
        if not applying:
            self.missed.append("kill mid-apply: no proposal was applying")
            self.log("kill mid-apply: MISSED (no proposal applying)")
        else:
            self.held_down.add("apply")
            self.procs["apply"].kill_group()
            self.killed_proposals = applying
            self.injected["apply worker SIGKILLed"] += 1
            self.log(f"SIGKILL the apply worker while proposals {applying} were applying")
        self.set_faults(latency_ms=self.config.latency_ms)
        if applying:
            self.sleep(2)
            self.procs["apply"].start()
            self.held_down.discard("apply")
            self.log("apply worker restarted")

    def finished_runs(self) -> int:
        return (
            AgentRun.objects.filter(workspace=self.world.workspace, is_test=False)
            .exclude(status__in=["queued", "running"])
            .count()
        )

    def wait_progress(self, fraction: float, timeout: float) -> None:
        """Let the work go on under the moderate faults until ``fraction`` of the runs are
        past their pipeline (or ``timeout`` s)."""
        target = int(fraction * 2 * len(self.accepted))
        self.wait(lambda: self.finished_runs() >= target, timeout)
        self.log(f"{self.finished_runs()} runs past their pipeline")

    def wait_runs_drained(self) -> None:
        drained = self.wait(
            lambda: (
                not AgentRun.objects.filter(
                    workspace=self.world.workspace, status__in=["queued", "running"]
                ).exists()
            ),
            self.config.drain_timeout,
        )
        self.phase_marks["runs drained"] = self.elapsed()
        self.drained_calls = self.next_call
        self.log("runs drained" if drained else "runs NOT drained in time")

    def outage(self) -> None:
        if not self.config.outage_seconds:
            return
        self.set_faults(error_rate=1.0, timeout_rate=0, drop_rate=0, latency_ms=0)
        self.phase_marks["outage start"] = self.elapsed()
        began = timezone.now()
        self.log(f"CRM outage: every CRM request fails for {self.config.outage_seconds:.0f} s")
        self.sleep(self.config.outage_seconds)
        self.set_faults(error_rate=0, timeout_rate=0, drop_rate=0, latency_ms=0)
        self.phase_marks["outage end"] = self.elapsed()
        self.outage_window = (began, timezone.now())
        self.log("the CRMs are back, healthy")

    def settle(self) -> None:
        self.log(f"waiting (at most {self.config.settle_timeout:.0f} s) for everything to settle")
        stable = 0
        deadline = time.monotonic() + self.config.settle_timeout
        state = ""
        last_said = time.monotonic()
        while time.monotonic() < deadline:
            self.tick(force=True)
            state = self.outstanding()
            stable = stable + 1 if not state else 0
            if state and time.monotonic() - last_said > 10:
                self.log(f"still owed: {state}")
                last_said = time.monotonic()
            if stable >= 3:
                self.log("settled")
                self.phase_marks["settled"] = self.elapsed()
                return
            time.sleep(1)
        self.log(f"NOT settled: {state}")

    def outstanding(self) -> str:
        """What is still owed or in flight, in words ('' when nothing)."""
        workspace = self.world.workspace
        no_runs = Call.objects.filter(
            workspace=workspace, external_id__in=self.accepted, runs__isnull=True
        )
        if any(f.name == "runs_created_at" for f in Call._meta.get_fields()):
            no_runs = no_runs.filter(Q(runs_created_at__isnull=True))
        counts = {
            "calls without runs": no_runs.count(),
            "working runs": AgentRun.objects.filter(
                workspace=workspace, status__in=WORKING_RUN
            ).count(),
            "working proposals": ChangeProposal.objects.filter(
                workspace=workspace, status__in=WORKING_PROPOSAL
            ).count(),
            "undecided proposals": ChangeProposal.objects.filter(
                workspace=workspace, status__in=NOT_DECIDED, change_set__is_test=False
            ).count(),
            "working sets": ChangeSet.objects.filter(
                workspace=workspace, status__in=WORKING_SET
            ).count(),
        }
        return ", ".join(f"{n} {what}" for what, n in counts.items() if n)

    # --- what happened -----------------------------------------------------------------

    def fate_of_runs(self) -> dict[int, str]:
        return dict(AgentRun.objects.filter(pk__in=self.killed_runs).values_list("pk", "status"))

    def fate_of_proposals(self) -> dict[int, str]:
        return dict(
            ChangeProposal.objects.filter(pk__in=self.killed_proposals).values_list("pk", "status")
        )

    def summary(self, report) -> str:
        from integrations.sandbox.models import SandboxRequest

        counts = report.counts
        outage_5xx = 0
        if self.outage_window:
            outage_5xx = SandboxRequest.objects.filter(
                account__in=self.world.accounts,
                status__gte=500,
                started_at__range=self.outage_window,
            ).count()
        unknown = counts["audit_crm_write"].get("unknown", 0)
        lines = [
            f"chaos run: {self.config.calls} calls, {self.elapsed():.0f} s "
            f"(phases: {', '.join(f'{k} at {v:.0f} s' for k, v in self.phase_marks.items())})",
            f"calls: posted {sum(self.posted.values())} {dict(self.posted)}, accepted "
            f"{len(self.accepted)}, stored {counts['calls']}, "
            f"with runs {counts['calls_with_runs']}",
            f"runs by status: {counts['runs']}",
            f"change sets by status: {counts['change_sets']}",
            f"proposals by status: {counts['proposals']} (auto-applied {counts['auto_applied']})",
            f"approvals through the API: {dict(self.approvals)}",
            f"writes: {counts['writes_effective']} fields in {counts['write_requests_effective']}"
            f" effective write requests; {counts['crm_requests']} CRM requests by the agent; "
            f"human edits {counts['human_edits']}; conflicts "
            f"{counts['proposals'].get('conflict', 0)}",
            f"faults injected: CRM 5xx {counts['crm_5xx']} ({outage_5xx} during the outage), "
            f"timeouts {counts['crm_timeouts']}, rate limited {counts['crm_rate_limited']}, "
            f"dropped connections at {self.config.drop_rate:.0%} (lost write answers the product "
            f"saw: {unknown}); {dict(self.injected)}; outage {self.config.outage_seconds:.0f} s",
            f"killed mid-run, now: {self.fate_of_runs()}; killed mid-apply, now: "
            f"{self.fate_of_proposals()}; processes restarted after crashing: "
            f"{dict(self.restarts)}",
            f"audit crm.write by outcome: {counts['audit_crm_write']}",
            f"reconciler actions: {counts['reconciler']}",
        ]
        if self.missed:
            lines.append(f"chaos steps that missed their moment: {self.missed}")
        return "\n".join(lines)
