"""The checks of a scenario's ``expect``, one entry per expectation, in canonical terms.

Values compare by meaning, whichever CRM holds them: numbers numerically (84000 and
"84000.0"), dates as dates (a date matches a datetime on the same day), text with its
whitespace collapsed, and values given per CRM resolved for the CRM under test.
"""

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_agents.models import Call
from crm_agents.scenarios import report
from crm_agents.scenarios.setup import World
from crm_agents.scenarios.spec import ExpectedProposal, Scenario
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRecord

NOT_TRIGGERED = "not_triggered"
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
# Enumerations and links hold different values in each CRM for the same meaning.
_NOT_COMPARED_ACROSS_CRMS = frozenset({"stage", "owner"})


def comparable(value: Any) -> tuple:
    """A key equal for equal meanings."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ("none",)
    if isinstance(value, bool):
        return ("text", "true" if value else "false")
    if isinstance(value, int | float | Decimal):
        return ("number", Decimal(str(value)).normalize())
    text = " ".join(str(value).split())
    if _NUMBER.fullmatch(text):
        try:
            return ("number", Decimal(text).normalize())
        except InvalidOperation:
            pass
    if _MOMENT.fullmatch(text):
        try:
            if len(text) == 10:
                return ("date", date.fromisoformat(text), None)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return ("date", moment.date(), moment)
        except ValueError:
            pass
    return ("text", text)


def same(expected: Any, actual: Any) -> bool:
    a, b = comparable(expected), comparable(actual)
    if a[0] == b[0] == "date":
        if a[2] is None or b[2] is None:
            return a[1] == b[1]
        return a[2] == b[2]
    return a == b


def _check(name: str, ok: bool, detail: str | None = None) -> dict:
    return {"check": name, "ok": bool(ok), "detail": None if ok else detail}


def evaluate(world: World, calls: dict[str, Call], result: dict) -> list[dict]:
    expect = world.scenario.expect
    found: list[dict] = []
    found += _records(world, expect.records)
    touched = report.written_ids(world)
    for key in expect.unchanged:
        crm_id = world.records[key].crm_id
        writes = [w["fields"] for w in result["writes"] if w["record"] == key]
        found.append(_check(f"unchanged.{key}", crm_id not in touched, f"written: {writes}"))
    outcomes = {f"{run['call']}/{run['workflow']}": run["outcome"] for run in result["runs"]}
    for name, wanted in expect.outcomes.items():
        wanted = world.value(wanted)
        actual = _outcome(calls, outcomes, name)
        found.append(_check(f"outcomes.{name}", actual == wanted, f"got {actual}"))
    for index, wanted in enumerate(expect.proposals):
        found.append(_proposal(world, calls, result, index, wanted))
    for index, denial in enumerate(expect.denied):
        hits = [
            d
            for d in result["denied"]
            if d["field"] == denial.field and denial.record in (None, d["record"])
        ]
        found.append(_check(f"denied[{index}]", hits, f"denied: {result['denied']}"))
    if expect.denied_min is not None:
        count = len(result["denied"])
        found.append(_check("denied_min", count >= expect.denied_min, f"{count} denied"))
    if expect.writes_max is not None:
        count = report.write_requests(world).count()
        found.append(_check("writes_max", count <= expect.writes_max, f"{count} writes"))
    return found


def _records(world: World, expected: dict[str, dict[str, Any]]) -> list[dict]:
    found = []
    schema = seed.schema_of(world.provider)
    for key, fields in expected.items():
        record = SandboxRecord.objects.get(pk=world.records[key].pk)
        object_type = world.profile.object_type_of(record.object_name)
        for name, raw in fields.items():
            wanted = world.value(raw)
            if name == "owner" and wanted in world.users:
                wanted = schema.owner_value(world.users[wanted])
            native = world.profile.native_field(object_type, name)
            actual = record.values.get(native)
            found.append(
                _check(
                    f"records.{key}.{name}",
                    same(wanted, actual),
                    f"expected {wanted!r}, got {report.wire(actual)!r}",
                )
            )
    return found


def _outcome(calls: dict[str, Call], outcomes: dict, name: str) -> str | None:
    call_key, _, workflow = name.partition("/")
    call = calls.get(call_key)
    if call is None:
        return None
    # A re-submitted call has the first submission's runs, reported under its key.
    first = next(key for key, c in calls.items() if c.pk == call.pk)
    return outcomes.get(f"{first}/{workflow}", NOT_TRIGGERED)


def _proposal(
    world: World, calls: dict[str, Call], result: dict, index: int, wanted: ExpectedProposal
) -> dict:
    call = calls.get(wanted.call)
    first = next((key for key, c in calls.items() if call and c.pk == call.pk), wanted.call)
    run = next(
        (r for r in result["runs"] if (r["call"], r["workflow"]) == (first, wanted.workflow)),
        None,
    )
    name = f"proposals[{index}]"
    if run is None:
        return _check(name, False, f"no run of {wanted.workflow} on {wanted.call}")
    mine = [p for p in run["proposals"] if p["field"] == wanted.field]
    status = world.value(wanted.status)
    hits = [
        p
        for p in mine
        if (status is None or p["status"] == status)
        and (wanted.new is None or same(world.value(wanted.new), p["new"]))
    ]
    seen = [(p["status"], p["new"], p["reason"]) for p in mine]
    return _check(name, hits, f"{wanted.field}: {seen or 'no proposal'}")


def providers_agree(scenario: Scenario, first: dict, second: dict) -> dict:
    """Both CRMs reached the same outcomes and the same proposals, in canonical terms,
    except where the scenario expects them to differ (an expectation given per CRM)."""
    runs, fields = _expected_to_differ(scenario)
    differences = []
    one, two = _outcomes(first, runs), _outcomes(second, runs)
    if one != two:
        differences.append(f"outcomes {one} vs {two}")
    one, two = _proposals(first, runs, fields), _proposals(second, runs, fields)
    if one != two:
        differences.append(
            f"proposals only on {first['provider']}: {sorted(set(one) - set(two))}; "
            f"only on {second['provider']}: {sorted(set(two) - set(one))}"
        )
    return _check("providers agree", not differences, "; ".join(differences))


def _expected_to_differ(scenario: Scenario) -> tuple[set[str], set[tuple[str, str, str]]]:
    expect = scenario.expect
    runs = {name for name, wanted in expect.outcomes.items() if isinstance(wanted, dict)}
    fields = {(p.call, p.workflow, p.field) for p in expect.proposals if isinstance(p.status, dict)}
    return runs, fields


def _outcomes(result: dict, skip: set[str]) -> dict[str, str]:
    found = {f"{run['call']}/{run['workflow']}": run["outcome"] for run in result["runs"]}
    return {name: outcome for name, outcome in found.items() if name not in skip}


def _proposals(result: dict, runs: set[str], fields: set[tuple[str, str, str]]) -> list[tuple]:
    rows = []
    for run in result["runs"]:
        if f"{run['call']}/{run['workflow']}" in runs:
            continue
        for p in run["proposals"]:
            if (run["call"], run["workflow"], p["field"]) in fields:
                continue
            value = None if p["field"] in _NOT_COMPARED_ACROSS_CRMS else comparable(p["new"])
            rows.append((run["call"], run["workflow"], p["field"], p["status"], str(value)))
    return sorted(rows)
