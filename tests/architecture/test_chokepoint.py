"""DESIGN.md invariant 1: nothing outside the guard calls a CRM client on record data.

The only other places that may hold a client are connection plumbing, which reads who a
token belongs to and whether it works, and the property-metadata refresh, which reads the
CRM's schema to offer it in the policy admin. None of them touches a record. A new caller
makes this test fail, so it has to be a deliberate, reviewed exception.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ["audit", "config", "crm_agents", "governance", "integrations"]
ALLOWED = {
    "governance/guard.py": "the chokepoint itself",
    "integrations/crm/clients.py": "where clients are built",
    "integrations/connected.py": "the client bound to a resolved connection",
    "integrations/services.py": "identity at connect time and the connection test (owners)",
    "governance/services.py": "property metadata refresh (describe)",
}


def _callers() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "/sandbox/" in relative or "/migrations/" in relative:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in {"build_client", "client"} and (name == "build_client" or not node.args):
                    found.setdefault(relative, []).append(node.lineno)
    return found


def test_only_the_guard_and_reviewed_plumbing_hold_crm_clients():
    callers = _callers()

    unexpected = {path: lines for path, lines in callers.items() if path not in ALLOWED}
    assert unexpected == {}, "CRM clients must be reached through governance/guard.py"
    assert "governance/guard.py" in callers
