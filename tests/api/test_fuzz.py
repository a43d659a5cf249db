"""schemathesis over the OpenAPI schema, against the live server: every operation, valid and
invalid data, every check on. Nothing may answer 500, and every answer must be what the
schema says (status, content type, headers, body).

Bounded for CI (``make fuzz``): a fixed seed, a few examples per operation, a deadline per
request. The fuzzed workspace has a HubSpot connection that is revoked (its property
metadata cached), so every run the fuzzer starts fails fast at "connect", with a reason,
and no request leaves the machine.
"""

import json
import logging
import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from governance.api_auth import ApiToken
from governance.models import ReviewMode, Role
from governance.review_models import ProposalStatus, SetStatus
from integrations.models import ConnectionStatus
from tests.factories import (
    AgentRunFactory,
    ApiTokenFactory,
    CallFactory,
    ChangeProposalFactory,
    ChangeSetFactory,
    ConnectionFactory,
    CrmPropertyFactory,
    FieldRuleFactory,
    PolicyFactory,
    WorkflowFactory,
    WorkspaceFactory,
    member_of,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

SEED = 20261121
EXAMPLES = 5
DEADLINE_MS = 5_000
CONFIG = {
    "seed": SEED,
    "generation": {
        "mode": "all",
        "max-examples": EXAMPLES,
        "deterministic": True,
        # The API refuses NUL characters anywhere (400, tests/api/test_bad_inputs.py).
        "allow-x00": False,
    },
    "checks": {"enabled": True},
    "request-timeout": DEADLINE_MS / 1000,
}


def _seed_world():
    """A workspace with something of everything the API shows, and its admin."""
    workspace = WorkspaceFactory(name="Fuzz Sales", slug="fuzz-sales")
    admin = member_of(workspace, Role.ADMIN, username="ada@fuzz.example")
    rep = member_of(workspace, Role.MEMBER, username="riley@fuzz.example")
    PolicyFactory(workspace=workspace)
    connection = ConnectionFactory(workspace=workspace, status=ConnectionStatus.REVOKED)
    for name, kind in (("amount", "number"), ("description", "string")):
        CrmPropertyFactory(workspace=workspace, connection=connection, name=name, type=kind)
    workflow = WorkflowFactory(workspace=workspace, name="Deal hygiene", key="deal-hygiene")
    FieldRuleFactory(workspace=workspace, workflow=workflow, field="description")
    call = CallFactory(workspace=workspace, owner_email="")
    run = AgentRunFactory(workspace=workspace, call=call, workflow=workflow, connection=connection)
    pending = ChangeSetFactory(workspace=workspace, run=run, owner_email="")
    ChangeProposalFactory(workspace=workspace, change_set=pending, review_mode="")
    ChangeProposalFactory(
        workspace=workspace,
        change_set=pending,
        field="description",
        native_field="description",
        proposed_value="Send the order form",
        review_mode=ReviewMode.REVIEW,
    )
    decided = ChangeSetFactory(
        workspace=workspace, run=run, status=SetStatus.REJECTED, decided_by=admin
    )
    ChangeProposalFactory(
        workspace=workspace, change_set=decided, status=ProposalStatus.REJECTED, decided_by=admin
    )
    ChangeSetFactory(workspace=workspace, run=run, requested_by=rep, owner_email="x@fuzz.example")
    ChangeSetFactory(workspace=workspace, run=run, is_test=True)
    ChangeSetFactory(workspace=workspace, run=run, status=SetStatus.NEEDS_CHOICE, record_id="")
    return workspace, admin


def _load_schema() -> schemathesis.BaseSchema:
    """The schema as /api/v1/schema/ serves it, generated at collection (no request needed).

    Not schemathesis' fixture loader (``schemathesis.pytest.from_fixture``): it writes a
    pytest node attribute that pytest 9 no longer has.
    """
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))
    return schemathesis.openapi.from_dict(
        json.loads(raw), config=schemathesis.Config.from_dict(CONFIG)
    )


@pytest.fixture
def api_client(live_server, settings, caplog):
    """The live server's URL and the seeded admin's token; a new token if the fuzzer revoked
    the last one (DELETE /tokens/{id}/)."""
    # One client (this test) makes every request: keep its auth failures (the ignored_auth
    # check sends none or bad credentials on purpose) from throttling the rest of the run.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth_failure": "1000000/min"},
    }
    # Hundreds of 4xx answers are the point here, not news for the log.
    caplog.set_level(logging.ERROR, logger="django.request")
    # The seed is made again for every operation: spare it the password hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _, admin = _seed_world()
    tokens = []

    def headers() -> dict[str, str]:
        if not tokens or ApiToken.objects.filter(pk=tokens[-1].pk, revoked_at__isnull=False):
            tokens.append(ApiTokenFactory(user=admin, name="Fuzzer"))
        return {"Authorization": f"Token {tokens[-1].secret}"}

    return live_server.url, headers


api = _load_schema()
_statuses: Counter = Counter()  # by status code
_seen: Counter = Counter()  # operations, requests, negative (invalid data)


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    """One line for the CI log: how much was sent, what came back, which checks judged it."""
    started = time.monotonic()
    yield
    if not _seen:
        return
    load_all_checks()
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(_statuses.items()))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(
        f"\nschemathesis: {_seen['operations']} operations, {_seen['requests']} requests "
        f"({_seen['negative']} with invalid data), each judged by "
        f"{len(CHECKS.get_all_names())} checks ({', '.join(CHECKS.get_all_names())}); "
        f"answers {{{statuses}}}; {time.monotonic() - started:.0f} s"
    )


@api.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    derandomize=True,
    database=None,  # no replay of examples saved by an earlier run: the same cases every time
    suppress_health_check=list(HealthCheck),
)
def test_the_api_holds_under_fuzzing(case, api_client):
    base_url, headers = api_client
    response = case.call_and_validate(base_url=base_url, headers=headers())
    _seen["requests"] += 1
    _statuses[response.status_code] += 1
    if case.meta is not None and case.meta.generation.mode.is_negative:
        _seen["negative"] += 1


@pytest.fixture(autouse=True)
def _count_operation():
    _seen["operations"] += 1
