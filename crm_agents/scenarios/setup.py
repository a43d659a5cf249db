"""Build the world a scenario runs in: sandbox CRM and model accounts, a new workspace,
its connections, policy and workflows. Everything is new for each run, so the result
stays visible in the admin afterwards ("Scenario: <name> (<provider>) #<n>")."""

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from crm_agents.models import FieldRule, Workflow
from crm_agents.scenarios.spec import Scenario, ScenarioError, per_crm
from governance import services as governance
from governance.models import (
    REVIEWED_BY_DEFAULT,
    CrmProperty,
    Policy,
    ReviewMode,
    Role,
    Workspace,
)
from integrations import services as connections
from integrations.crm.profiles import PROFILES, CrmProfile
from integrations.crm.types import ObjectType
from integrations.crm.types import Provider as CrmProvider
from integrations.models import Connection, ConnectionScope
from integrations.sandbox import seed
from integrations.sandbox.models import (
    ModelMode,
    SandboxAccount,
    SandboxPropertyChange,
    SandboxRecord,
    SandboxRequest,
    SandboxUser,
)

RUNNER_EMAIL = "scenario-runner@crm-steward.local"
_RECORD_REF = re.compile(r"\{\{record:([A-Za-z0-9_.-]+)\}\}")


@dataclass
class World:
    scenario: Scenario
    provider: str
    number: int
    workspace: Workspace
    runner: Any  # the Django user who connects and reviews
    account: SandboxAccount
    model_account: SandboxAccount
    model_key: str
    connection: Connection
    users: dict[str, SandboxUser] = field(default_factory=dict)
    records: dict[str, SandboxRecord] = field(default_factory=dict)
    request_mark: int = 0  # the last sandbox request made while setting up

    @property
    def profile(self) -> CrmProfile:
        return PROFILES[CrmProvider(self.provider)]

    def record_key(self, crm_id: str | None) -> str | None:
        """A CRM id as the scenario names it (unknown ids stay ids)."""
        if not crm_id:
            return None
        for key, record in self.records.items():
            if record.crm_id == crm_id:
                return key
        return crm_id

    def crm_ids(self) -> set[str]:
        return {record.crm_id for record in self.records.values()}

    def value(self, raw: Any) -> Any:
        return per_crm(raw, self.provider)


def build_world(scenario: Scenario, provider: str, sandbox_url: str) -> World:
    number = _next_number(scenario, provider)
    label = f"Scenario: {scenario.name} ({provider}) #{number}"
    runner = _runner()
    with transaction.atomic():
        workspace = governance.do_create_workspace(
            label[:200], acting_user=runner, slug=_slug(scenario, provider, number)
        )
        account = seed.create_account(provider, label[:200])
        users = {
            spec.key: seed.add_user(
                account,
                spec.email,
                access=spec.access,
                team=spec.team,
                readonly_fields=spec.readonly_fields,
                hidden_fields=spec.hidden_fields,
            )
            for spec in scenario.crm.users
        }
        for custom in scenario.crm.custom_fields:
            seed.add_custom_field(
                account,
                custom.object,
                custom.name,
                custom.type,
                label=custom.label,
                options=custom.options,
            )
        records = _add_records(scenario, account, provider, users)
        mode = ModelMode.SCRIPTED if scenario.model.kind == "scripted" else ModelMode.RULES
        model_account, model_key = seed.create_model_account(mode, name=label[:200])
    world = World(
        scenario=scenario,
        provider=provider,
        number=number,
        workspace=workspace,
        runner=runner,
        account=account,
        model_account=model_account,
        model_key=model_key,
        connection=None,  # type: ignore[arg-type]  # set just below
        users=users,
        records=records,
    )
    _script_answers(world)
    world.connection = _connect(world, sandbox_url)
    governance.do_refresh_properties(world.connection, acting_user=None)
    _policy(world)
    _workflows(world)
    world.request_mark = (
        SandboxRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    )
    return world


def _next_number(scenario: Scenario, provider: str) -> int:
    prefix = f"Scenario: {scenario.name} ({provider}) #"[:200]
    return Workspace.objects.filter(name__startswith=prefix).count() + 1


def _slug(scenario: Scenario, provider: str, number: int) -> str:
    base = f"scenario-{slugify(scenario.name)[:36]}-{provider[:2]}-{number}"
    slug = base
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug[:64]


def _runner():
    user, _ = governance.get_or_create_user(RUNNER_EMAIL, password=secrets.token_urlsafe(24))
    return user


def _add_records(scenario, account, provider, users) -> dict[str, SandboxRecord]:
    records: dict[str, SandboxRecord] = {}
    for i, spec in enumerate(scenario.crm.records):
        fields = per_crm(spec.fields, provider)
        try:
            records[spec.key] = seed.add_record(
                account,
                spec.object,
                fields,
                owner=users[spec.owner] if spec.owner else None,
                associations=[records[key] for key in spec.associations],
                modified_at=dict(spec.modified_at) or None,
            )
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ScenarioError(f"crm.records[{i}].fields", str(exc)) from exc
    _space_out(scenario, provider, records)
    return records


def _space_out(scenario: Scenario, provider: str, records: dict[str, SandboxRecord]) -> None:
    """Records created a few milliseconds apart could tie on "most recently active" (a
    ranking signal) from one run to the next: give them one minute each, in file order,
    ending a minute ago. Times the file sets (``modified_at``) are kept."""
    profile = PROFILES[CrmProvider(provider)]
    start = timezone.now() - timedelta(minutes=len(records) + 1)
    for i, spec in enumerate(scenario.crm.records):
        record = records[spec.key]
        at = start + timedelta(minutes=i)
        kept = [profile.native_field(ObjectType(spec.object), name) for name in spec.modified_at]
        SandboxPropertyChange.objects.filter(record=record).exclude(name__in=kept).update(
            changed_at=at
        )
        updated = max([at, *spec.modified_at.values()])
        SandboxRecord.objects.filter(pk=record.pk).update(created_at=at, updated_at=updated)


def resolve_answer(world: World, answer: Any) -> Any:
    """Per-CRM values and ``{{record:KEY}}`` references, resolved for this run."""

    def records(text: str) -> str:
        def crm_id(match: re.Match) -> str:
            record = world.records.get(match[1])
            return record.crm_id if record else match[0]

        return _RECORD_REF.sub(crm_id, text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return records(value)
        if isinstance(value, dict):
            return {records(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(world.value(answer))


def _script_answers(world: World) -> None:
    calls = {call.key: call.external_id for call in world.scenario.calls}
    for name, steps in world.scenario.model.answers.items():
        call_key, _, workflow_key = name.partition("/")
        for step, answer in steps.items():
            resolved = resolve_answer(world, answer)
            content = resolved if isinstance(resolved, str) else json.dumps(resolved)
            seed.script_answer(
                world.model_account,
                f"{calls[call_key]}/{workflow_key}",
                step,
                {"content": content},
            )


def _connect(world: World, sandbox_url: str) -> Connection:
    spec = world.scenario.connections
    workspace_user = world.users[world.scenario.workspace_user()]
    connection = connections.connect_with_token(
        world.workspace,
        world.provider,
        ConnectionScope.WORKSPACE,
        access_token=seed.issue_token(workspace_user).access_token,
        instance_url=sandbox_url,
        acting_user=world.runner,
    )
    for email, key in (spec.users if spec else {}).items():
        person, _ = governance.get_or_create_user(email, password=secrets.token_urlsafe(24))
        governance.do_set_membership(world.workspace, person, Role.MEMBER, acting_user=None)
        connections.connect_with_token(
            world.workspace,
            world.provider,
            ConnectionScope.USER,
            access_token=seed.issue_token(world.users[key]).access_token,
            instance_url=sandbox_url,
            acting_user=person,
            user=person,
        )
    return connection


def _policy(world: World) -> Policy:
    spec = world.scenario.policy
    review = spec.review
    values: dict[str, Any] = {
        f"{name}_scope": scope for name, scope in spec.objects.items()
    } | spec.toggles.model_dump()
    # The policy reviews stage, amount and close date unless told otherwise field by field
    # (governance.models.REVIEWED_BY_DEFAULT); a scenario's default covers them too.
    if review is not None:
        default = review if isinstance(review, str) else review.default
        fields = {} if isinstance(review, str) else dict(review.fields)
        values |= {
            "review_default": ReviewMode(default),
            "review_overrides": dict.fromkeys(REVIEWED_BY_DEFAULT, default) | fields,
        }
    policy = Policy(
        workspace=world.workspace,
        provider=world.provider,
        dry_run=spec.dry_run,
        force_workspace_connection_for_chat=spec.force_workspace_connection_for_chat,
        **values,
    )
    policy._history_user = world.runner
    policy.save()
    policy.read_properties.set(_properties(world, spec.read_fields, "policy.read_fields"))
    policy.write_properties.set(_properties(world, spec.write_fields, "policy.write_fields"))
    return policy


def _properties(world: World, fields: dict[str, list[str]], path: str) -> list[CrmProperty]:
    chosen = []
    for object_name, names in fields.items():
        object_type = ObjectType(object_name)
        rows = {
            row.name: row
            for row in CrmProperty.objects.filter(
                connection=world.connection, object_type=object_type
            )
        }
        for i, name in enumerate(names):
            native = world.profile.native_field(object_type, name)
            if native not in rows:
                raise ScenarioError(
                    f"{path}.{object_name}[{i}]",
                    f"{world.provider} has no {object_name} property {native!r} (from {name!r})",
                )
            chosen.append(rows[native])
    return chosen


def _workflows(world: World) -> None:
    for spec in world.scenario.workflows:
        trigger = spec.trigger
        workflow = Workflow.objects.create(
            workspace=world.workspace,
            name=spec.key,
            key=spec.key,
            provider=world.provider,
            object_type=spec.object,
            trigger_external_attendees=trigger.external_attendees,
            trigger_title_contains=trigger.title_contains or "",
            trigger_min_duration_s=trigger.min_duration_s,
            trigger_owner_team=trigger.owner_team or "",
            no_match=spec.no_match,
            dry_run=spec.dry_run,
        )
        for order, rule in enumerate(spec.fields):
            FieldRule.objects.create(
                workspace=world.workspace,
                workflow=workflow,
                field=rule.field,
                instruction=rule.instruction,
                write_mode=rule.write_mode,
                read_dependencies=list(rule.read),
                order=order,
                review_override=rule.review or "",
            )
