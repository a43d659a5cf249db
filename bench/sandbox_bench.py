"""Throughput and latency of the sandbox CRMs for search and batch read.

Builds one HubSpot portal and one Salesforce org with RECORDS deals each in a fresh
SQLite database (or DATABASE_URL), serves the sandbox in its own process exactly as
`manage.py runsandbox` does, and drives it from CLIENTS threads over HTTP. Rate limits
are switched off for the accounts so the figures measure the emulator, not its limiter.

    .venv/bin/python bench/sandbox_bench.py [--records 10000] [--requests 300] [--clients 4]
"""

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import served_sandbox, setup_django  # noqa: E402


def _build(provider: str, records: int) -> tuple[str, list[str]]:
    from integrations.sandbox import seed, store
    from integrations.sandbox.models import SandboxProperty

    account = seed.create_account(provider, f"bench {provider}")
    account.burst_limit = account.daily_limit = account.search_per_second = 0
    account.save()
    user = seed.add_user(account, f"bench@{provider}.example")
    token = seed.issue_token(user).access_token
    profile = seed.profile_of(account)
    object_name = profile.object_name("deal")
    props = {
        p.name: p for p in SandboxProperty.objects.filter(account=account, object_name=object_name)
    }
    schema = seed.schema_of(provider)
    rng = random.Random(7)
    names = {
        field: profile.native_field("deal", field)
        for field in ("name", "amount", "stage", "close_date")
    }
    stage = "qualifiedtobuy" if provider == "hubspot" else "Qualification"
    rows = []
    for i in range(records):
        values = {
            names["name"]: schema.to_native(props[names["name"]], f"Deal {i:05d}"),
            names["amount"]: schema.to_native(
                props[names["amount"]], rng.randrange(1_000, 200_000)
            ),
            names["stage"]: schema.to_native(props[names["stage"]], stage),
            names["close_date"]: schema.to_native(props[names["close_date"]], "2026-12-31"),
        }
        if provider == "hubspot":
            values[profile.native_field("deal", "owner")] = user.owner_id
        else:
            values["OwnerId"] = user.crm_user_id
        rows.append((values, user))
    created = []
    for start in range(0, records, 2000):
        created += store.bulk_create_records(account, object_name, rows[start : start + 2000])
    return token, [record.crm_id for record in created]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _drive(name: str, total: int, clients: int, one_request) -> None:
    latencies: list[float] = []

    def timed(i: int) -> None:
        started = time.perf_counter()
        response = one_request(i)
        latencies.append(time.perf_counter() - started)
        if response.status_code >= 400:
            raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, range(total)))
    elapsed = time.perf_counter() - started
    print(
        f"{name:<34} {total / elapsed:8.1f} req/s"
        f"   p50 {statistics.median(latencies) * 1000:7.1f} ms"
        f"   p95 {_percentile(latencies, 0.95) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    database_url = setup_django("sandbox-bench")
    import requests

    started = time.perf_counter()
    hubspot_token, hubspot_ids = _build("hubspot", args.records)
    salesforce_token, salesforce_ids = _build("salesforce", args.records)
    print(
        f"seeded 2 x {args.records} deals in {time.perf_counter() - started:.1f} s"
        f" ({database_url.split(':')[0]})"
    )

    with served_sandbox(database_url) as base:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.clients * 2))
        hs = {"Authorization": f"Bearer {hubspot_token}"}
        sf = {"Authorization": f"Bearer {salesforce_token}"}
        rng = random.Random(11)
        print(
            f"{args.requests} requests each, {args.clients} concurrent clients,"
            f" {args.records} deals per account"
        )

        _drive(
            "hubspot search (filter+sort, 100)",
            args.requests,
            args.clients,
            lambda i: session.post(
                f"{base}/crm/v3/objects/deals/search",
                headers=hs,
                timeout=60,
                json={
                    "filterGroups": [
                        {
                            "filters": [
                                {
                                    "propertyName": "amount",
                                    "operator": "GT",
                                    "value": str(rng.randrange(1_000, 190_000)),
                                },
                                {
                                    "propertyName": "dealstage",
                                    "operator": "EQ",
                                    "value": "qualifiedtobuy",
                                },
                            ]
                        }
                    ],
                    "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}],
                    "properties": ["dealname", "amount", "dealstage"],
                    "limit": 100,
                },
            ),
        )
        _drive(
            "hubspot batch read (100 ids)",
            args.requests,
            args.clients,
            lambda i: session.post(
                f"{base}/crm/v3/objects/deals/batch/read",
                headers=hs,
                timeout=60,
                json={
                    "inputs": [{"id": crm_id} for crm_id in rng.sample(hubspot_ids, 100)],
                    "properties": ["dealname", "amount", "dealstage", "closedate"],
                },
            ),
        )
        _drive(
            "salesforce SOQL search (200)",
            args.requests,
            args.clients,
            lambda i: session.get(
                f"{base}/services/data/v59.0/query/",
                headers=sf,
                timeout=60,
                params={
                    "q": (
                        "SELECT Id, Name, Amount, StageName FROM Opportunity WHERE Amount > "
                        f"{rng.randrange(1_000, 190_000)} AND StageName = 'Qualification' "
                        "ORDER BY Amount DESC LIMIT 200"
                    )
                },
            ),
        )
        _drive(
            "salesforce batch read (200 ids)",
            args.requests,
            args.clients,
            lambda i: session.get(
                f"{base}/services/data/v59.0/composite/sobjects/Opportunity",
                headers=sf,
                timeout=60,
                params={
                    "ids": ",".join(rng.sample(salesforce_ids, 200)),
                    "fields": "Id,Name,Amount,StageName,CloseDate",
                },
            ),
        )


if __name__ == "__main__":
    main()
