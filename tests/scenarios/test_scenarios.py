"""Every scenario file under tests/scenarios/ (examples/ included), on both CRMs, plus the
contract of ``manage.py run_scenario``: exit codes, error messages and the --json shape.

The scenarios run through the sandbox served over HTTP by a thread that shares the test
database, so these tests commit their data (transaction=True).
"""

import copy
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from crm_agents.scenarios import runner
from crm_agents.scenarios.loader import load

HERE = Path(__file__).resolve().parent
FILES = sorted(HERE.rglob("*.json"))
BASIC = HERE / "examples" / "basic-deal-hygiene.json"

REPORT_KEYS = {
    "scenario",
    "provider",
    "passed",
    "runs",
    "writes",
    "denied",
    "api_requests",
    "audit_events",
    "checks",
}
RUN_KEYS = {"call", "workflow", "outcome", "record", "candidates", "proposals"}
PROPOSAL_KEYS = {"field", "native_field", "old", "new", "evidence", "status", "reason"}


def _failures(report: dict) -> list[dict]:
    return [check for check in report["checks"] if not check["ok"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(HERE)) for p in FILES])
def test_it_passes_on_both_crms(path, sandbox_server):
    reports = runner.run_all([load(path)], "both", sandbox_url=sandbox_server.url)

    assert [r["provider"] for r in reports] == ["hubspot", "salesforce"]
    for report in reports:
        assert report["passed"], (report["provider"], _failures(report))
        assert any(check["check"] == "providers agree" for check in report["checks"])


def test_there_are_enough_scenarios_of_our_own():
    ours = [path for path in FILES if path.parent == HERE]
    assert len(ours) >= 25
    assert len(FILES) - len(ours) == 3  # the examples from shared/scenarios


# --- malformed files exit 2, naming the key -----------------------------------------------


def _write(tmp_path, data: object, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _basic() -> dict:
    return json.loads(BASIC.read_text())


def _exit_code_and_message(*args, **options) -> tuple[int, str]:
    try:
        call_command("run_scenario", *args, stdout=StringIO(), **options)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, ""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["calls"][0].update(atendees=[]), "calls[0].atendees: unknown key"),
        (lambda d: d["calls"][0].update(duration_s="long"), "calls[0].duration_s:"),
        (lambda d: d.update(provider="pipedrive"), "provider:"),
        (lambda d: d["policy"].update(review={"defalt": "auto"}), "policy.review.defalt"),
        (lambda d: d["workflows"][0]["fields"][0].update(write_mode="replace"), "write_mode"),
        (lambda d: d["expect"].update(outcomes={"c1/hygiene": "done"}), "outcomes.c1/hygiene"),
        (lambda d: d["calls"][0]["attendees"][1].update(email="not-an-email"), "attendees[1]"),
        (
            lambda d: d["crm"]["records"][1].update(associations=["acmee"]),
            "crm.records[1].associations[0]: unknown record key 'acmee'",
        ),
        (lambda d: d.pop("calls"), "calls: required key missing"),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "bad-provider",
        "nested-unknown-key",
        "bad-choice",
        "bad-outcome",
        "bad-email",
        "unknown-reference",
        "missing-key",
    ],
)
def test_it_exits_2_naming_the_bad_key(tmp_path, change, expected):
    data = _basic()
    change(data)

    code, message = _exit_code_and_message(str(_write(tmp_path, data)))

    assert code == 2
    assert expected in message


def test_it_exits_2_on_a_file_that_is_not_json_or_missing(tmp_path):
    assert _exit_code_and_message(str(_write(tmp_path, "{nope")))[0] == 2
    assert _exit_code_and_message(str(tmp_path / "missing.json"))[0] == 2


def test_it_refuses_an_unknown_provider_option():
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("run_scenario", str(BASIC), "--provider", "pipedrive")


# --- exit 1 on a failed expectation; the --json report --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_exits_1_when_an_expectation_fails_with_check(tmp_path, monkeypatch):
    monkeypatch.delenv("SANDBOX_URL", raising=False)  # the command serves its own sandbox
    data = _basic()
    data["expect"]["records"]["deal1"]["amount"] = 1
    path = _write(tmp_path, data)

    code, message = _exit_code_and_message(str(path), provider="hubspot", check=True)
    out = StringIO()
    call_command("run_scenario", str(path), provider="hubspot", json=True, stdout=out)

    assert code == 1
    assert "1 of 1 runs failed" in message
    report = json.loads(out.getvalue())
    failed = _failures(report)
    assert report["passed"] is False
    assert [c["check"] for c in failed] == ["records.deal1.amount"]
    assert failed[0]["detail"] == "expected 1, got '84000'"


@pytest.mark.django_db(transaction=True)
def test_the_json_report_has_the_readme_shape(monkeypatch):
    monkeypatch.delenv("SANDBOX_URL", raising=False)
    out = StringIO()

    call_command("run_scenario", str(BASIC), provider="both", check=True, json=True, stdout=out)

    reports = json.loads(out.getvalue())
    assert isinstance(reports, list)
    assert len(reports) == 2
    for report in reports:
        assert set(report) == REPORT_KEYS
        assert report["passed"] is True
        assert set(report["api_requests"]) == {"total", "reads", "writes", "searches"}
        assert report["api_requests"]["writes"] == 1
        assert report["audit_events"] > 0
        assert report["writes"] == [
            {
                "record": "deal1",
                "fields": {
                    "next_step": "Send the MSA and order form by Friday November 27",
                    "amount": "84000",
                    "close_date": report["writes"][0]["fields"]["close_date"],
                },
            }
        ]
        assert report["denied"] == []
        (run,) = report["runs"]
        assert set(run) == RUN_KEYS
        assert (run["call"], run["workflow"], run["outcome"], run["record"]) == (
            "c1",
            "hygiene",
            "applied",
            "deal1",
        )
        assert [c["record"] for c in run["candidates"]] == ["deal1"]
        assert set(run["candidates"][0]) == {"record", "score", "reasons"}
        assert all(set(p) == PROPOSAL_KEYS for p in run["proposals"])
        amount = next(p for p in run["proposals"] if p["field"] == "amount")
        assert (amount["old"], amount["new"], amount["status"]) == (None, "84000", "applied")
        assert amount["evidence"].startswith("We looked at the proposal with finance")
        assert all(set(c) == {"check", "ok", "detail"} for c in report["checks"])
        assert report["checks"][-1] == {"check": "providers agree", "ok": True, "detail": None}


# --- same input, same report -------------------------------------------------------------------

_IDS = re.compile(r"\b(\d{5,}|[0-9a-zA-Z]{3}5g0[0-9a-zA-Z]{9}(?:[A-Z0-5]{3})?)\b")
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")


def _normalised(reports: list[dict]) -> str:
    text = json.dumps(copy.deepcopy(reports), sort_keys=True)
    return _TIMES.sub("<time>", _IDS.sub("<id>", text))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "name",
    ["examples/conflict-newer-human-edit.json", "no-match-create-allowed.json"],
)
def test_five_runs_give_identical_reports(name, sandbox_server):
    scenario = load(HERE / name)

    runs = [
        _normalised(runner.run_all([scenario], "both", sandbox_url=sandbox_server.url))
        for _ in range(5)
    ]

    assert all(run == runs[0] for run in runs[1:])
    assert '"passed": true' in runs[0]
