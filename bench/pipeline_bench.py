"""The agent pipeline end to end: calls in, matched, extracted, planned, applied.

Builds, per CRM, COMPANIES companies in the sandbox (one contact each; every fifth company
has a second open deal, so ranking has to work), connects a fresh workspace to it, sets an
auto-apply policy and one workflow with three fields (amount, close date, next step), then
submits CALLS calls and processes each through the real pipeline: the real client
libraries over HTTP to the sandbox served in its own process, the sandbox model in
``rules`` mode, Celery eager in this process. It reports calls per minute, p50/p95
pipeline time, and CRM requests per call from the sandbox's request log, split into the
run (match + read) and the apply, next to a naive baseline: an agent with raw CRM tools
doing one search, one get and one update per field.

With ``--multi`` each workspace has four workflows instead (two on the deal, one on the
contact, one on the deal whose field waits for review) and the bench prints, per call: CRM
requests (match + read, then writes), model calls, prompt tokens, change sets and the
reviewer decisions they need.

    .venv/bin/python bench/pipeline_bench.py [--calls 500] [--baseline-calls 50]
    .venv/bin/python bench/pipeline_bench.py --multi [--calls 20]
"""

import argparse
import logging
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import served_sandbox, setup_django  # noqa: E402

FIELDS = ("amount", "close_date", "next_step")
CRM_KINDS = ("read", "search", "write")  # metadata, auth and model calls are not counted


def _build_crm(provider: str, companies: int):
    from integrations.sandbox import seed

    account = seed.create_account(provider, f"bench {provider}")
    account.burst_limit = account.daily_limit = account.search_per_second = 0
    account.save()
    user = seed.add_user(account, f"ops@{provider}.example")
    stage = "qualifiedtobuy" if provider == "hubspot" else "Qualification"
    for i in range(companies):
        company = seed.add_record(
            account, "company", {"name": f"Bench Co {i}", "domain": f"co{i}.example"}, owner=user
        )
        contact = seed.add_record(
            account,
            "contact",
            {"first_name": "Buyer", "last_name": f"N{i}", "email": f"buyer{i}@co{i}.example"},
            owner=user,
            associations=[company],
        )
        deal_fields = {
            "name": f"Co {i} Platform",
            "amount": 10_000,
            "stage": stage,
            "close_date": "2027-03-31",
        }
        seed.add_record(account, "deal", deal_fields, owner=user, associations=[company, contact])
        if i % 5 == 0:
            seed.add_record(
                account,
                "deal",
                {**deal_fields, "name": f"Co {i} Analytics"},
                owner=user,
                associations=[company],
            )
    return account, user


def _workspace(provider: str, user, base_url: str):
    from crm_agents.models import FieldRule, Workflow
    from governance import services as governance_services
    from governance.models import CrmProperty, ObjectScope, Policy
    from integrations import services
    from integrations.crm.profiles import PROFILES
    from integrations.sandbox import seed

    workspace = governance_services.do_create_workspace(
        f"Bench {provider}", slug=f"bench-{provider}", acting_user=None
    )
    token = seed.issue_token(user).access_token
    admin, _ = governance_services.get_or_create_user(
        f"bench-{provider}@example.com", password="bench-only-password-1"
    )
    connection = services.connect_with_token(
        workspace,
        provider,
        "workspace",
        access_token=token,
        instance_url=base_url,
        acting_user=admin,
    )
    governance_services.do_refresh_properties(connection, acting_user=None)
    profile = PROFILES[provider]
    policy = Policy.objects.create(
        workspace=workspace,
        provider=provider,
        deal_scope=ObjectScope.READ_WRITE,
        review_default="auto",
        review_overrides={"amount": "auto", "close_date": "auto"},
    )
    natives = [profile.native_field("deal", field) for field in FIELDS]
    policy.write_properties.set(
        CrmProperty.objects.filter(connection=connection, object_type="deal", name__in=natives)
    )
    workflow = Workflow.objects.create(
        workspace=workspace, provider=provider, key="hygiene", name="Deal hygiene"
    )
    instructions = {
        "amount": "The annual contract value the buyer agreed to, in dollars",
        "close_date": "The date the buyer expects to sign",
        "next_step": "The concrete next step both sides agreed on",
    }
    for order, field in enumerate(FIELDS):
        FieldRule.objects.create(
            workspace=workspace,
            workflow=workflow,
            field=field,
            instruction=instructions[field],
            order=order,
        )
    return workspace, connection


# --multi: (key, object, [(field, instruction, review override)])
MULTI_WORKFLOWS = (
    (
        "hygiene",
        "deal",
        [
            ("amount", "The annual contract value the buyer agreed to, in dollars", ""),
            ("close_date", "The date the buyer expects to sign", ""),
        ],
    ),
    ("next", "deal", [("next_step", "The concrete next step both sides agreed on", "")]),
    ("titles", "contact", [("title", "The attendee's job title, as they stated it", "")]),
    (
        "risks",
        "deal",
        [("description", "The buyer's pains and blockers, in their words", "review")],
    ),
)


def _multi_workflows(workspace, provider: str, connection) -> None:
    """Replace the one workflow by the four of --multi, with the policy they need."""
    from crm_agents.models import FieldRule, Workflow
    from governance.models import CrmProperty, ObjectScope, Policy
    from integrations.crm.profiles import PROFILES

    profile = PROFILES[provider]
    Workflow.objects.filter(workspace=workspace).delete()
    policy = Policy.objects.get(workspace=workspace, provider=provider)
    policy.contact_scope = ObjectScope.READ_WRITE
    policy.save()
    for key, object_type, rules in MULTI_WORKFLOWS:
        workflow = Workflow.objects.create(
            workspace=workspace,
            provider=provider,
            key=key,
            name=f"{object_type.title()} {key}",
            object_type=object_type,
        )
        for order, (field, instruction, review) in enumerate(rules):
            FieldRule.objects.create(
                workspace=workspace,
                workflow=workflow,
                field=field,
                instruction=instruction,
                order=order,
                review_override=review,
            )
            policy.write_properties.add(
                *CrmProperty.objects.filter(
                    connection=connection,
                    object_type=object_type,
                    name=profile.native_field(object_type, field),
                )
            )


def _call(i: int, provider: str, started: datetime):
    from crm_agents.calls import CallIn

    amount = 20_000 + 500 * i
    sign = date(2027, 1, 1) + timedelta(days=i % 200)
    return CallIn.model_validate(
        {
            "external_id": f"bench-{provider}-{i}",
            "title": f"Co {i} x Seller: pricing",
            "started_at": started.isoformat(),
            "duration_s": 1800,
            "owner": "riley@seller.example",
            "attendees": [
                {"name": "Riley Rep", "email": "riley@seller.example", "internal": True},
                {"name": f"Buyer N{i}", "email": f"buyer{i}@co{i}.example"},
            ],
            "transcript": [
                {"speaker": "Riley Rep", "start": 3.0, "text": "Thanks for the time today."},
                {
                    "speaker": f"Buyer N{i}",
                    "start": 9.5,
                    "text": f"We looked at it with finance and we can work with "
                    f"${amount:,} a year.",
                },
                {
                    "speaker": f"Buyer N{i}",
                    "start": 21.0,
                    "text": f"We would like to sign by {sign.strftime('%B')} {sign.day}, "
                    f"{sign.year}.",
                },
                {
                    "speaker": f"Buyer N{i}",
                    "start": 27.0,
                    "text": "My job title is VP of Operations. Our biggest problem is the "
                    "manual reconciliation every month.",
                },
                {
                    "speaker": "Riley Rep",
                    "start": 33.0,
                    "text": "Next step: I will send the order form by Friday.",
                },
            ],
        }
    )


def _requests(account, since) -> Counter:
    from integrations.sandbox.models import SandboxRequest

    kinds = SandboxRequest.objects.filter(account=account, started_at__gt=since).values_list(
        "kind", flat=True
    )
    return Counter(kinds)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _model_calls(since) -> int:
    from integrations.sandbox.models import SandboxRequest

    return SandboxRequest.objects.filter(
        started_at__gt=since, path__endswith="/chat/completions"
    ).count()


def _per_call(call, since) -> dict:
    """What --multi prints per call, beyond the CRM requests."""
    from django.db.models import Sum

    from crm_agents.models import AgentRun
    from governance.review_models import ChangeSet, SetStatus

    sets = ChangeSet.objects.filter(run__call=call, is_test=False)
    return {
        "model_calls": _model_calls(since),
        "prompt_tokens": AgentRun.objects.filter(call=call).aggregate(t=Sum("prompt_tokens"))["t"]
        or 0,
        "change_sets": sets.exclude(status=SetStatus.NEEDS_CHOICE).count(),
        "decisions": sets.filter(
            status__in=[SetStatus.PENDING_REVIEW, SetStatus.NEEDS_CHOICE]
        ).count(),
    }


def _bench(provider: str, calls: int, base_url: str, *, multi: bool = False) -> dict:
    from django.utils import timezone

    from crm_agents import tasks
    from crm_agents.models import AgentRun
    from crm_agents.services import do_submit_call

    account, user = _build_crm(provider, calls)
    workspace, connection = _workspace(provider, user, base_url)
    if multi:
        _multi_workflows(workspace, provider, connection)
    durations, run_requests, apply_requests, statuses = [], [], [], Counter()
    writes, per_call = [], []
    started_all = time.perf_counter()
    deferred: list[int] = []
    real_delay = tasks.apply_change_set.delay
    tasks.apply_change_set.delay = deferred.append  # apply after counting the run's requests
    try:
        for i in range(calls):
            mark = timezone.now()
            started = time.perf_counter()
            call, _ = do_submit_call(workspace, _call(i, provider, datetime.now(UTC)))
            tasks.process_call(call.pk)
            run_counts = _requests(account, mark)
            call_stats = _per_call(call, mark)
            mark = timezone.now()
            while deferred:
                tasks.apply_change_set(deferred.pop())
            durations.append(time.perf_counter() - started)
            apply_counts = _requests(account, mark)
            for run in AgentRun.objects.filter(call=call):
                statuses[f"{run.workflow.key}:{run.status}" if multi else run.status] += 1
            run_requests.append(sum(run_counts[k] for k in ("read", "search")))
            apply_requests.append(sum(apply_counts[k] for k in CRM_KINDS))
            writes.append(apply_counts["write"] + run_counts["write"])
            per_call.append(call_stats)
    finally:
        tasks.apply_change_set.delay = real_delay
    elapsed = time.perf_counter() - started_all
    return {
        "provider": provider,
        "calls": calls,
        "per_minute": calls / elapsed * 60,
        "p50": statistics.median(durations) * 1000,
        "p95": _percentile(durations, 0.95) * 1000,
        "run": statistics.mean(run_requests),
        "run_max": max(run_requests),
        "apply": statistics.mean(apply_requests),
        "writes": statistics.mean(writes),
        **{
            key: statistics.mean(stats[key] for stats in per_call)
            for key in ("model_calls", "prompt_tokens", "change_sets", "decisions")
        },
        "statuses": dict(statuses),
        "account": account,
        "user": user,
    }


def _baseline(provider: str, account, user, base_url: str, calls: int) -> float:
    """What an agent with raw CRM tools does: per field, search for the deal, get it,
    update it. Run for real against the same sandbox, counted from its request log."""
    from django.utils import timezone

    from integrations.crm.base import by_email
    from integrations.crm.clients import build_client
    from integrations.crm.profiles import PROFILES
    from integrations.crm.types import ObjectType, Operator, SearchFilter, SearchQuery
    from integrations.sandbox import seed

    client = build_client(
        provider, base_url=base_url, access_token=seed.issue_token(user).access_token
    )
    profile = PROFILES[provider]
    values = {"amount": "99000", "close_date": "2027-02-01", "next_step": "Send the order form"}
    counts = []
    for i in range(calls):
        mark = timezone.now()
        email = profile.native_field(ObjectType.CONTACT, "email")
        client.search(by_email(ObjectType.CONTACT, email, [f"buyer{i}@co{i}.example"]))
        for field, value in values.items():
            name = profile.native_field(ObjectType.DEAL, "name")
            page = client.search(
                SearchQuery(
                    ObjectType.DEAL,
                    ((SearchFilter(name, Operator.EQ, value=f"Co {i} Platform"),),),
                    properties=(name,),
                )
            )
            deal = page.records[0]
            native = profile.native_field(ObjectType.DEAL, field)
            client.get(ObjectType.DEAL, deal.id, [native])
            client.update(ObjectType.DEAL, deal.id, {native: value})
        counted = _requests(account, mark)
        counts.append(sum(counted[kind] for kind in CRM_KINDS))
    return statistics.mean(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--baseline-calls", type=int, default=50)
    parser.add_argument("--provider", choices=["hubspot", "salesforce", "both"], default="both")
    parser.add_argument(
        "--multi", action="store_true", help="four workflows per call (see the module's doc)"
    )
    args = parser.parse_args()

    database_url = setup_django("pipeline-bench", eager=True, quiet_http=True)
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # a line per task
    from django.conf import settings
    from django.test import override_settings

    from integrations.sandbox.seed import ensure_rules_model_account

    providers = ["hubspot", "salesforce"] if args.provider == "both" else [args.provider]
    with (
        served_sandbox(database_url) as base,
        override_settings(
            SANDBOX_URL=base,
            HUBSPOT_API_URL=base,
            SALESFORCE_LOGIN_URL=base,
            MODEL_BASE_URL=f"{base}/sandbox/openai/v1",
        ),
    ):
        ensure_rules_model_account(settings.MODEL_API_KEY)
        print(f"{args.calls} calls per CRM, one worker, sandbox model in rules mode")
        for provider in providers:
            if args.multi:
                _print_multi(_bench(provider, args.calls, base, multi=True))
                continue
            result = _bench(provider, args.calls, base)
            baseline = _baseline(
                provider, result["account"], result["user"], base, args.baseline_calls
            )
            print(
                f"{provider:<10} {result['per_minute']:7.0f} calls/min"
                f"   p50 {result['p50']:6.0f} ms   p95 {result['p95']:6.0f} ms"
                f"   CRM requests/call: run {result['run']:.2f} (max {result['run_max']})"
                f" + apply {result['apply']:.2f}"
                f" = {result['run'] + result['apply']:.2f}"
                f"   naive baseline {baseline:.1f}"
                f"   outcomes {result['statuses']}"
            )


def _print_multi(result: dict) -> None:
    print(
        f"{result['provider']:<10} 4 workflows   per call: CRM requests match + read "
        f"{result['run']:.2f} (max {result['run_max']}), writes {result['writes']:.2f}"
        f"   model calls {result['model_calls']:.2f}"
        f"   prompt tokens {result['prompt_tokens']:.0f}"
        f"   change sets {result['change_sets']:.2f}"
        f"   reviewer decisions {result['decisions']:.2f}"
        f"   p50 {result['p50']:.0f} ms"
        f"   outcomes {result['statuses']}"
    )


if __name__ == "__main__":
    main()
