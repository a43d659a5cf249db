"""Chat end to end: a rep finds a deal, reads its amount and asks to change its close date.

Builds, per CRM, DEALS open deals ("Bench Deal 0001 - Platform", …) owned by a rep whose
CRM user sees only their own records, plus a renewal deal of the same name for every fifth
one owned by another CRM user (so a find that ignored the rep's access would match two).
The workspace has a connection, its properties and a policy that lets CRM Steward write a
deal's amount, close date and next step; chat's review setting stays at its default,
"review". The rep connects with their own OAuth grant and holds CONVERSATIONS chats, each
on another deal, of three turns through the real chat services: the real client libraries
over HTTP to the sandbox served in its own process, the sandbox model in ``rules`` mode,
Celery eager in this process. It reports, per CRM and turn, p50/p95 turn time and the
requests each turn made, from the sandbox's request log: CRM reads, searches and writes,
metadata calls, and model calls. Each reply is checked as it comes (one deal found, the
amount read, one change proposed and sent to review, nothing written). CRM Steward's own
per-account rate limits (integrations/throttle.py) stay on, as in production; at HubSpot's
default burst of 100 requests per 10 s they, not the work, set HubSpot's pace
(CRM_HUBSPOT_BURST=0 in the environment switches that off).

    .venv/bin/python bench/chat_bench.py [--conversations 50] [--deals 200]
        [--provider both] [--show-requests]
"""

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import served_sandbox, setup_django  # noqa: E402

CRM_KINDS = ("read", "search", "write")
TURNS = (
    ("find", "find the {name} deal"),
    ("show", "show its amount"),
    ("set", "set its close date to 2027-03-31"),
)
NEW_CLOSE_DATE = "2027-03-31"
WRITABLE = ("amount", "close_date", "next_step")
REP_EMAIL = "riley@seller.example"
STAGES = {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}


def _deal_name(number: int) -> str:
    return f"Bench Deal {number:04d}"


def _amount(number: int) -> int:
    return 10_000 + 100 * number


def _build_crm(provider: str, deals: int):
    """The sandbox CRM: an admin user, the rep (owned records only) and their deals."""
    from integrations.sandbox import seed

    account = seed.create_account(provider, f"chat bench {provider}")
    account.burst_limit = account.daily_limit = account.search_per_second = 0
    account.save()
    ops = seed.add_user(account, f"ops@{provider}.example", access="all")
    rep = seed.add_user(account, REP_EMAIL, first_name="Riley", last_name="Rep", access="owned")
    records = {}
    for number in range(1, deals + 1):
        fields = {
            "name": f"{_deal_name(number)} - Platform",
            "amount": _amount(number),
            "close_date": "2026-12-31",
            "stage": STAGES[provider],
        }
        records[number] = seed.add_record(account, "deal", fields, owner=rep)
        if number % 5 == 0:  # the other user's deal of the same name the rep must not see
            renewal = {**fields, "name": f"{_deal_name(number)} - Renewal"}
            seed.add_record(account, "deal", renewal, owner=ops)
    return account, ops, rep, records


def _workspace(provider: str, ops, rep_crm, base_url: str):
    """The workspace, its connection and policy, and the rep with their own connection."""
    from governance import services as governance_services
    from governance.models import CrmProperty, ObjectScope, Policy, Role
    from integrations import services
    from integrations.crm.profiles import PROFILES
    from integrations.models import ConnectionScope, Credentials
    from integrations.sandbox import seed

    admin, _ = governance_services.get_or_create_user(
        f"chat-bench-{provider}@example.com", password="bench-only-password-1"
    )
    workspace = governance_services.do_create_workspace(
        f"Chat bench {provider}", slug=f"chat-bench-{provider}", acting_user=admin
    )
    connection = services.connect_with_token(
        workspace,
        provider,
        ConnectionScope.WORKSPACE,
        access_token=seed.issue_token(ops).access_token,
        instance_url=base_url,
        acting_user=admin,
    )
    governance_services.do_refresh_properties(connection, acting_user=None)
    profile = PROFILES[provider]
    policy = Policy.objects.create(
        workspace=workspace, provider=provider, deal_scope=ObjectScope.READ_WRITE
    )
    policy.write_properties.set(
        CrmProperty.objects.filter(
            connection=connection,
            object_type="deal",
            name__in=[profile.native_field("deal", f) for f in WRITABLE],
        )
    )
    rep, _ = governance_services.get_or_create_user(REP_EMAIL, password="bench-only-password-1")
    governance_services.do_set_membership(workspace, rep, Role.MEMBER, acting_user=admin)
    token = seed.issue_token(rep_crm, expires_in=timedelta(hours=1), refresh=True)
    services.connect_with_oauth_grant(
        workspace,
        provider,
        ConnectionScope.USER,
        credentials=Credentials(
            token.access_token, token.refresh_token, token.expires_at.isoformat()
        ),
        instance_url=connection.api_base_url,
        acting_user=rep,
        user=rep,
    )
    return workspace, rep


def _last_request() -> int:
    from integrations.sandbox.models import SandboxRequest

    return SandboxRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _requests_since(mark: int, accounts) -> list[tuple[str, str, str, str]]:
    """(kind, method, path, query) of every request the sandbox answered for ``accounts``."""
    from integrations.sandbox.models import SandboxRequest

    rows = SandboxRequest.objects.filter(pk__gt=mark, account__in=accounts).order_by("pk")
    return list(rows.values_list("kind", "method", "path", "query"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass
class TurnStats:
    durations: list[float] = field(default_factory=list)
    requests: list[Counter] = field(default_factory=list)
    example: list[tuple[str, str, str, str]] = field(default_factory=list)


def _check(kind: str, reply, deal_id: str, amount: int) -> None:
    """Fail loudly when a turn did not do what the rep asked."""
    from governance.review_models import ProposalStatus

    activity = reply.activity
    problem = activity["error"] or activity["refused"]
    if problem:
        raise AssertionError(f"{kind} turn on {deal_id} failed: {problem}")
    if kind == "find":
        found = [item["id"] for item in activity["found"]]
        if found != [deal_id]:
            raise AssertionError(f"find turn found {found}, not [{deal_id}]")
    elif kind == "show":
        (read,) = activity["read"]
        (value,) = read["values"].values()
        if read["id"] != deal_id or float(value) != amount:
            raise AssertionError(f"show turn read {read}, not {amount}")
    else:
        (proposed,) = activity["proposed"]
        expected = (deal_id, NEW_CLOSE_DATE, ProposalStatus.PENDING)
        got = (proposed["id"], proposed["value"], proposed["status"])
        if got != expected:
            raise AssertionError(f"set turn proposed {got}, not {expected}")


def _bench(provider: str, conversations: int, deals: int, base_url: str, model_account) -> dict:
    from django.core.cache import cache

    from crm_agents.chat.services import do_post_chat_message, do_start_chat_session

    cache.clear()  # stage and owner metadata are cached per connection id
    account, ops, rep_crm, records = _build_crm(provider, deals)
    workspace, rep = _workspace(provider, ops, rep_crm, base_url)
    accounts = [account, model_account]
    stats = {kind: TurnStats() for kind, _ in TURNS}
    started_all = time.perf_counter()
    for conversation in range(conversations):
        number = conversation % deals + 1
        deal_id = records[number].crm_id
        session = do_start_chat_session(workspace, rep, provider)
        for kind, text in TURNS:
            mark = _last_request()
            started = time.perf_counter()
            reply = do_post_chat_message(session, text.format(name=_deal_name(number)), user=rep)
            elapsed = time.perf_counter() - started
            made = _requests_since(mark, accounts)
            _check(kind, reply, deal_id, _amount(number))
            counts = Counter(request[0] for request in made)
            if counts["write"]:
                raise AssertionError(f"{kind} turn wrote to the CRM: {made}")
            stats[kind].durations.append(elapsed)
            stats[kind].requests.append(counts)
            stats[kind].example = made  # the last conversation's: caches are warm
    return {
        "provider": provider,
        "per_minute": conversations / (time.perf_counter() - started_all) * 60,
        "turns": stats,
    }


def _mean(counts: list[Counter], *kinds: str) -> float:
    return statistics.mean(sum(c[k] for k in kinds) for c in counts)


def _print(result: dict, show_requests: bool) -> None:
    print(f"{result['provider']:<10} {result['per_minute']:6.0f} conversations/min")
    for kind, stats in result["turns"].items():
        requests = stats.requests
        print(
            f"  {kind:<5} p50 {statistics.median(stats.durations) * 1000:5.0f} ms"
            f"   p95 {_percentile(stats.durations, 0.95) * 1000:5.0f} ms"
            f"   CRM requests/turn {_mean(requests, *CRM_KINDS):4.2f}"
            f" (read {_mean(requests, 'read'):.2f}, search {_mean(requests, 'search'):.2f},"
            f" write {_mean(requests, 'write'):.2f})"
            f"   metadata {_mean(requests, 'meta'):.2f}"
            f"   model {_mean(requests, 'model'):.2f}"
        )
        if show_requests:
            for request_kind, method, path, query in stats.example:
                soql = parse_qs(query).get("q", [""])[0]  # which object a Salesforce query reads
                print(f"      {request_kind:<6} {method:<5} {path} {soql[:100]}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--deals", type=int, default=200)
    parser.add_argument("--provider", choices=["hubspot", "salesforce", "both"], default="both")
    parser.add_argument(
        "--show-requests",
        action="store_true",
        help="list the requests each turn of the last conversation made",
    )
    args = parser.parse_args()

    database_url = setup_django("chat-bench", eager=True, quiet_http=True)
    from django.test import override_settings

    from integrations.sandbox import seed

    providers = ["hubspot", "salesforce"] if args.provider == "both" else [args.provider]
    with served_sandbox(database_url) as base:
        model_account, api_key = seed.create_model_account("rules")
        with override_settings(
            SANDBOX_URL=base,
            HUBSPOT_API_URL=base,
            HUBSPOT_AUTHORIZE_URL=f"{base}/oauth/authorize",
            SALESFORCE_LOGIN_URL=base,
            MODEL_BASE_URL=f"{base}/sandbox/openai/v1",
            MODEL_API_KEY=api_key,
        ):
            print(
                f"{args.conversations} conversations per CRM of three turns"
                f" ({', '.join(kind for kind, _ in TURNS)}) over {args.deals} deals,"
                " one worker, sandbox model in rules mode"
            )
            for provider in providers:
                result = _bench(provider, args.conversations, args.deals, base, model_account)
                _print(result, args.show_requests)


if __name__ == "__main__":
    main()
