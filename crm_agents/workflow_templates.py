"""Workflow templates for the common cases: pick one, adjust an instruction, done.

Field names are canonical (mapped to each CRM by its profile); custom fields such as the
MEDDPICC ones are created in the CRM by RevOps and named here in snake case
(``economic_buyer`` is ``economic_buyer`` on HubSpot and ``Economic_Buyer__c`` on
Salesforce).
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from crm_agents.configuration import do_create_field_rule, do_create_workflow
from crm_agents.models import NoMatch, Workflow, WriteMode
from governance.models import Workspace


@dataclass(frozen=True)
class RuleTemplate:
    field: str
    instruction: str
    write_mode: str = WriteMode.OVERWRITE
    read: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowTemplate:
    key: str
    name: str
    object_type: str
    description: str
    rules: tuple[RuleTemplate, ...]
    title_contains: str = ""
    min_duration_s: int = 0


TEMPLATES: dict[str, WorkflowTemplate] = {
    template.key: template
    for template in (
        WorkflowTemplate(
            key="next-steps",
            name="Next steps",
            object_type="deal",
            description="Keeps the deal's next step current after every customer call.",
            rules=(
                RuleTemplate(
                    "next_step",
                    "The concrete next step both sides agreed on, who does it and by when, "
                    "in one sentence.",
                ),
            ),
            min_duration_s=300,
        ),
        WorkflowTemplate(
            key="amount-close-date",
            name="Deal amount and close date",
            object_type="deal",
            description="Updates amount and close date when the buyer states them.",
            rules=(
                RuleTemplate(
                    "amount",
                    "The contract value the buyer agreed to or stated as their budget, in "
                    "the deal's currency, as a number.",
                    read=("stage",),
                ),
                RuleTemplate(
                    "close_date",
                    "The date the buyer expects to sign or start, if they said one.",
                    read=("stage",),
                ),
            ),
        ),
        WorkflowTemplate(
            key="meddpicc",
            name="MEDDPICC qualification",
            object_type="deal",
            description="Fills the MEDDPICC fields from discovery and qualification calls.",
            rules=(
                RuleTemplate(
                    "metrics",
                    "The measurable outcome the buyer wants (numbers, KPIs).",
                    WriteMode.APPEND_IF_DIFFERENT,
                ),
                RuleTemplate(
                    "economic_buyer",
                    "The person who signs off the budget: name and title.",
                    WriteMode.FILL_EMPTY,
                ),
                RuleTemplate(
                    "decision_criteria",
                    "How the buyer will compare options.",
                    WriteMode.APPEND_IF_DIFFERENT,
                ),
                RuleTemplate(
                    "decision_process",
                    "The steps and people between now and a signed contract.",
                    WriteMode.APPEND_IF_DIFFERENT,
                ),
                RuleTemplate(
                    "pain_points",
                    "The business pains the buyer described, in their words.",
                    WriteMode.APPEND_IF_DIFFERENT,
                ),
                RuleTemplate(
                    "champion",
                    "The person inside the buyer who pushes for us.",
                    WriteMode.FILL_EMPTY,
                ),
                RuleTemplate(
                    "competition",
                    "Other vendors or in-house options the buyer mentioned.",
                    WriteMode.APPEND_IF_DIFFERENT,
                ),
            ),
            title_contains="",
        ),
        WorkflowTemplate(
            key="contact-details",
            name="Contact title and phone",
            object_type="contact",
            description="Fills a contact's job title and phone when they say them.",
            rules=(
                RuleTemplate(
                    "title", "The attendee's job title, as they stated it.", WriteMode.FILL_EMPTY
                ),
                RuleTemplate(
                    "phone",
                    "A phone number the attendee gave for themselves.",
                    WriteMode.FILL_EMPTY,
                ),
            ),
        ),
    )
}


@transaction.atomic
def do_create_workflow_from_template(
    workspace: Workspace,
    provider: str,
    template_key: str,
    *,
    actor: AbstractBaseUser | None = None,
    fields: list[str] | None = None,
    enabled: bool = True,
) -> Workflow:
    """A workflow and its rules from a template; ``fields`` keeps only those rules (for a
    CRM that lacks some custom fields). Audited like any workflow and rule created by hand;
    ``actor`` None is the system (the demo set-up)."""
    template = TEMPLATES[template_key]
    workflow = do_create_workflow(
        workspace,
        {
            "provider": provider,
            "key": template.key,
            "name": template.name,
            "object_type": template.object_type,
            "trigger_title_contains": template.title_contains,
            "trigger_min_duration_s": template.min_duration_s,
            "no_match": NoMatch.SKIP,
            "enabled": enabled,
        },
        actor=actor,
        template=template.key,
    )
    for order, rule in enumerate(template.rules):
        if fields is not None and rule.field not in fields:
            continue
        do_create_field_rule(
            workflow,
            {
                "field": rule.field,
                "instruction": rule.instruction,
                "write_mode": rule.write_mode,
                "read_dependencies": list(rule.read),
                "order": order,
            },
            actor=actor,
        )
    return workflow
