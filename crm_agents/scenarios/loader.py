"""Reading a scenario file: JSON, then its shape (spec.py), then every key it refers to
(records, users, calls, workflows) and each call as the product's API would take it.
Whatever is wrong raises ScenarioError naming the key path (``calls[0].atendees``).
"""

import json
import re
from pathlib import Path

from pydantic import ValidationError

from crm_agents.scenarios.spec import (
    ChooseDecision,
    ExpectSpec,
    Scenario,
    ScenarioError,
)


def load(path: str | Path) -> Scenario:
    """The scenario in ``path``; ScenarioError names what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError("", f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ScenarioError("", f"{path} is not JSON: {exc}") from exc
    return parse(data)


def parse(data: object) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = _most_telling(exc.errors())
        raise ScenarioError(key_path(first["loc"]), _message(first)) from exc
    check_references(scenario)
    return scenario


def _most_telling(errors: list) -> dict:
    """Of the first key's errors (a union reports one per branch), the deepest, and an
    unknown key before anything else: ``decision.edt: unknown key`` says most."""
    path = key_path(errors[0]["loc"])
    same = [e for e in errors if key_path(e["loc"]).startswith(path)]
    deepest = max(_depth(e["loc"]) for e in same)
    deep = [e for e in same if _depth(e["loc"]) == deepest]
    return next((e for e in deep if e["type"] == "extra_forbidden"), deep[0])


def _depth(loc: tuple) -> int:
    return len([part for part in loc if isinstance(part, int) or not _is_union_branch(part)])


def key_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_union_branch(part):
            continue  # pydantic names the union branch it tried; the file does not
        else:
            path += f".{part}" if path else str(part)
    return path


def _is_union_branch(part: str) -> bool:
    return part in {"EditDecision", "ChooseDecision", "ReviewPolicySpec"} or bool(
        re.fullmatch(r"literal\[.*\]|str|list\[.*\]|dict\[.*\]", part)
    )


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key missing"
    return error["msg"]


def check_references(scenario: Scenario) -> None:
    """Every key a scenario refers to exists (and records refer only to earlier records)."""
    users = {user.key for user in scenario.crm.users}
    _unique([u.key for u in scenario.crm.users], "crm.users", "user")
    _unique([r.key for r in scenario.crm.records], "crm.records", "record")
    _unique([c.key for c in scenario.calls], "calls", "call")
    _unique([w.key for w in scenario.workflows], "workflows", "workflow")
    records: dict[str, str] = {}
    for i, record in enumerate(scenario.crm.records):
        where = f"crm.records[{i}]"
        if record.owner is not None and record.owner not in users:
            raise ScenarioError(f"{where}.owner", f"unknown user key {record.owner!r}")
        for j, target in enumerate(record.associations):
            if target not in records:
                raise ScenarioError(
                    f"{where}.associations[{j}]",
                    f"unknown record key {target!r} (associate with records listed earlier)",
                )
        records[record.key] = record.object
    if scenario.connections is not None:
        if scenario.connections.workspace not in users:
            raise ScenarioError(
                "connections.workspace", f"unknown user key {scenario.connections.workspace!r}"
            )
        for email, key in scenario.connections.users.items():
            if key not in users:
                raise ScenarioError(f"connections.users.{email}", f"unknown user key {key!r}")
    calls = {call.key for call in scenario.calls}
    workflows = {workflow.key for workflow in scenario.workflows}
    for name in scenario.model.answers:
        call, _, workflow = name.partition("/")
        if call not in calls or workflow not in workflows:
            raise ScenarioError(
                f"model.answers.{name}", "name an existing <call key>/<workflow key>"
            )
    if scenario.model.answers and scenario.model.kind != "scripted":
        raise ScenarioError("model.answers", 'scripted answers need "kind": "scripted"')
    for i, edit in enumerate(scenario.crm_edits):
        where = f"crm_edits[{i}]"
        _known(edit.after_call, calls, f"{where}.after_call", "call")
        _known(edit.record, records, f"{where}.record", "record")
        _known(edit.by, users, f"{where}.by", "user")
    for i, decision in enumerate(scenario.review):
        where = f"review[{i}]"
        _known(decision.call, calls, f"{where}.call", "call")
        _known(decision.workflow, workflows, f"{where}.workflow", "workflow")
        if decision.after_call is not None:
            _known(decision.after_call, calls, f"{where}.after_call", "call")
        if isinstance(decision.decision, ChooseDecision):
            _known(decision.decision.choose, records, f"{where}.decision.choose", "record")
    _check_calls(scenario)
    _check_expect(scenario.expect, records, calls, workflows)


def _check_calls(scenario: Scenario) -> None:
    """Each call as the product's own boundary (crm_agents/calls.py) would take it."""
    from crm_agents.calls import CallIn

    for i, call in enumerate(scenario.calls):
        payload = call.model_dump(exclude={"key"})
        try:
            CallIn.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ScenarioError(key_path(("calls", i, *first["loc"])), _message(first)) from exc


def _check_expect(expect: ExpectSpec, records, calls, workflows) -> None:
    for key in expect.records:
        _known(key, records, f"expect.records.{key}", "record")
    for i, key in enumerate(expect.unchanged):
        _known(key, records, f"expect.unchanged[{i}]", "record")
    for name in expect.outcomes:
        call, _, workflow = name.partition("/")
        if call not in calls or workflow not in workflows:
            raise ScenarioError(f"expect.outcomes.{name}", "name <call key>/<workflow key>")
    for i, proposal in enumerate(expect.proposals):
        _known(proposal.call, calls, f"expect.proposals[{i}].call", "call")
        _known(proposal.workflow, workflows, f"expect.proposals[{i}].workflow", "workflow")
    for i, denial in enumerate(expect.denied):
        if denial.record is not None:
            _known(denial.record, records, f"expect.denied[{i}].record", "record")


def _known(key: str, known, path: str, kind: str) -> None:
    if key not in known:
        raise ScenarioError(path, f"unknown {kind} key {key!r}")


def _unique(keys: list[str], path: str, kind: str) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise ScenarioError(f"{path}[{i}].key", f"duplicate {kind} key {key!r}")
        seen.add(key)
