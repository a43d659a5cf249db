"""The policy as the agent's system prompt states it: the same rules the guard enforces.

One function, used by the pipeline, so the model is told exactly what governance/guard.py
will allow; tests check the two agree for every toggle.
"""

from governance.models import ObjectScope, ObjectTypeChoice, Policy

TOGGLES = [
    ("allow_create", "create new records"),
    ("allow_stage_change", "change a deal's stage"),
    ("allow_update_closed", "update a deal that is closed (won or lost)"),
    ("allow_clear_values", "clear a field (set it to empty)"),
    ("allow_create_associations", "associate records with each other"),
]


def policy_prompt_section(policy: Policy) -> str:
    lines = ["## What you may do in the CRM (enforced: anything else is refused)"]
    if policy.paused:
        lines.append("- CRM Steward is PAUSED: propose nothing; no change will be sent.")
    if policy.dry_run:
        lines.append("- DRY RUN: proposals are recorded as a test and never sent to the CRM.")
    for object_type in ObjectTypeChoice.values:
        scope = policy.object_scope(object_type)
        if scope == ObjectScope.NONE:
            lines.append(
                f"- {object_type}: no access. Do not mention or propose {object_type} fields."
            )
            continue
        readable = _names(policy.read_properties.all(), object_type)
        writable = [
            prop.name
            for prop in policy.write_properties.all()
            if prop.object_type == object_type and policy.may_write(object_type, prop.name)
        ]
        read_text = ", ".join(readable) if readable else "all its properties"
        if scope == ObjectScope.READ_WRITE and writable:
            write_text = f"you may propose values only for: {', '.join(sorted(writable))}"
        else:
            write_text = "you may not propose any change"
        lines.append(f"- {object_type}: you may read {read_text}; {write_text}.")
    for attribute, action in TOGGLES:
        allowed = getattr(policy, attribute)
        lines.append(f"- You {'may' if allowed else 'may NOT'} {action}.")
    return "\n".join(lines)


def _names(properties, object_type: str) -> list[str]:
    return sorted(prop.name for prop in properties if prop.object_type == object_type)
