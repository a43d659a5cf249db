"""The agent's chat tools: find records, read a record, propose an update.

They are the agent's, not the CRM's: each resolves what the model named (crm_agents/chat/
references.py), goes through the guard of the rep's chat connection (so the policy and the
rep's own record access hold), and answers the model with JSON that always has a
``summary``. Anything refused (an unknown tool, malformed arguments, a record outside the
rep's access, a field outside the whitelist) is answered as a refusal with its reason, added
to the turn's activity and audited; nothing a model sends can do more than these three
tools allow.
"""

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.models import ActorKind
from audit.services import record_event
from crm_agents.chat import references
from crm_agents.chat.activity import Activity
from crm_agents.chat.memory import Remembered, remember
from crm_agents.chat.references import ChatRefusal
from crm_agents.chat_models import ChatMessage, ChatSession
from crm_agents.crm_meta import (
    closed_stage_values,
    deal_stages,
    described,
    owner_id_for_email,
)
from governance.crm_links import record_url
from governance.guard import Guard, Refused
from governance.models import CrmProvider
from integrations.crm import errors
from integrations.crm.types import (
    ObjectType,
    Operator,
    PropertySpec,
    Record,
    SearchFilter,
)
from integrations.models import ConnectionScope

FIND_RECORDS, READ_RECORD, PROPOSE_UPDATE = "find_records", "read_record", "propose_update"
OBJECT_TYPES = ("deal", "contact", "company")
DEAL_FIELDS = ("stage", "amount", "close_date", "next_step")
MAX_FIELDS = 20

RECORD_HELP = (
    'The record: "it" for the record the conversation is about, a reference such as '
    '"deal:123" from find_records, or a name.'
)
TOOL_SPECS = [
    {
        "type": "function",
        "function": {
            "name": FIND_RECORDS,
            "description": "Find CRM records the rep may see: by name, email or domain, or "
            "the rep's own open deals (mine and open).",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "A name, email or domain."},
                    "object_type": {"type": "string", "enum": list(OBJECT_TYPES)},
                    "mine": {"type": "boolean", "description": "Only records the rep owns."},
                    "open": {"type": "boolean", "description": "Only open deals."},
                },
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": READ_RECORD,
            "description": "Read fields of one record (only fields the policy lets CRM "
            "Steward read).",
            "parameters": {
                "type": "object",
                "properties": {
                    "record": {"type": "string", "description": RECORD_HELP},
                    "fields": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Field names, e.g. close_date; empty for the main ones.",
                    },
                },
                "required": ["record"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": PROPOSE_UPDATE,
            "description": "Propose setting one field of one record to a value the rep "
            "asked for. The workspace's policy decides whether it is written at once or "
            "reviewed first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "record": {"type": "string", "description": RECORD_HELP},
                    "field": {"type": "string", "description": "e.g. close_date"},
                    "value": {"type": "string", "description": "The new value, as said."},
                },
                "required": ["record", "field", "value"],
                "additionalProperties": False,
            },
        },
    },
]

Text = Annotated[str, Field(min_length=1, max_length=300)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FindArgs(_Args):
    query: Annotated[str, Field(max_length=300)] | None = None
    object_type: Literal["deal", "contact", "company"] | None = None
    mine: bool = False
    open: bool = False


class ReadArgs(_Args):
    record: Text
    fields: Annotated[list[Text], Field(max_length=MAX_FIELDS)] = []


class ProposeArgs(_Args):
    record: Text
    field: Text
    value: Annotated[str, Field(max_length=10_000)] | int | float | bool | None


ARGUMENTS = {FIND_RECORDS: FindArgs, READ_RECORD: ReadArgs, PROPOSE_UPDATE: ProposeArgs}


class ChatTools:
    def __init__(
        self, session: ChatSession, guard: Guard, activity: Activity, asked: ChatMessage
    ) -> None:
        from crm_agents.chat.proposing import Proposer

        self.session = session
        self.guard = guard
        self.profile = guard.profile
        self.activity = activity
        self.asked = asked
        self._specs: dict[ObjectType, dict[str, PropertySpec]] = {}
        self.proposer = Proposer(self)

    # --- dispatch --------------------------------------------------------------------------
    def call(self, name: str, raw_arguments: object) -> dict:
        """Run one tool call as the model sent it; the JSON answer for the model."""
        schema = ARGUMENTS.get(name)
        if schema is None:
            offered = ", ".join(ARGUMENTS)
            return self.refuse(name, f"There is no tool {name!r}; the tools are {offered}.")
        try:
            parsed = json.loads(raw_arguments) if isinstance(raw_arguments, str) else None
        except ValueError as exc:
            return self.refuse(name, f"The arguments are not valid JSON ({exc}).")
        if not isinstance(parsed, dict):
            return self.refuse(name, "The arguments must be a JSON object.")
        try:
            arguments = schema.model_validate(parsed)
        except ValidationError as exc:
            return self.refuse(name, f"The arguments are not valid: {_problems(exc)}.")
        try:
            return getattr(self, name)(arguments)
        except ChatRefusal as exc:
            return self.refuse(name, exc.reason)
        except Refused as exc:  # the guard refused a read; it audited that itself
            return self.refuse(name, f"Refused by your workspace's policy: {exc.refusal.reason}.")
        except errors.NotFound:
            return self.refuse(name, "That record does not exist or is outside your access.")
        except errors.PermissionDenied as exc:
            return self.refuse(name, f"The CRM refused: {exc.message}.")
        except (errors.RateLimited, errors.Transient) as exc:
            return self.refuse(name, f"The CRM is busy or unreachable ({exc}); try again shortly.")
        except errors.CrmError as exc:
            return self.refuse(name, f"The CRM refused the request: {exc}.")

    def refuse(self, tool: str, reason: str) -> dict:
        self.activity.refuse(tool, reason)
        record_event(
            self.session.workspace,
            action="chat.tool.refused",
            outcome="denied",
            actor_kind=ActorKind.AGENT,
            actor_user=self.session.user,
            crm=self.session.provider,
            reason=reason[:2000],
            **self.session.audit_labels(),
            context={"tool": str(tool)[:100]},
        )
        return {"refused": True, "reason": reason, "summary": f"Refused: {reason}"}

    # --- shared helpers --------------------------------------------------------------------
    def specs(self, object_type: ObjectType) -> dict[str, PropertySpec]:
        """The object's properties the policy lets CRM Steward read, as this connection's
        describe has them (Salesforce: with the rep's own field-level security)."""
        if object_type not in self._specs:
            specs = described(self.guard, self.guard.connection, object_type)
            self._specs[object_type] = {spec.name: spec for spec in specs}
        return self._specs[object_type]

    def _record_item(self, record: Remembered) -> dict:
        """A record as the turn's activity lists it, with its page in the CRM."""
        connection = self.guard.connection
        url = record_url(
            self.session.provider,
            record.object_type,
            record.id,
            account_id=connection.crm_account_id,
            base_url=connection.api_base_url,
        )
        return {
            "object_type": record.object_type,
            "id": record.id,
            "label": record.label,
            "url": url or "",
        }

    def shown(self, record: Record, native: str) -> str | None:
        value = record.properties.get(native)
        stage = self.profile.native_field(ObjectType.DEAL, "stage")
        if value and record.object_type == ObjectType.DEAL and native == stage:
            stages = deal_stages(self.guard, self.guard.connection)
            return {s.value: s.label for s in stages}.get(value, value)
        return value

    # --- find_records ----------------------------------------------------------------------
    def find_records(self, args: FindArgs) -> dict:
        query = (args.query or "").strip()
        if not query and not args.mine:
            raise ChatRefusal(
                "Say what to look for: a name, an email or a domain, or ask for your open deals."
            )
        object_type = ObjectType(args.object_type) if args.object_type else None
        extra: list[SearchFilter] = []
        if args.mine:
            object_type = object_type or ObjectType.DEAL
            extra.append(self._mine(object_type))
        if args.open:
            object_type = object_type or ObjectType.DEAL
            if object_type != ObjectType.DEAL:
                raise ChatRefusal("Only deals are open or closed.")
            closed = closed_stage_values(deal_stages(self.guard, self.guard.connection))
            stage = self.profile.native_field(ObjectType.DEAL, "stage")
            extra.append(SearchFilter(stage, Operator.NOT_IN, values=tuple(sorted(closed))))
        if query:
            found = references.search_by_name(
                self.guard, query, object_type, tuple(extra), details=self._details
            )
        else:
            found = references.search(self.guard, object_type, ((*extra,),), self._details)
        return self._found(found, query or "your open deals")

    def _details(self, object_type: ObjectType) -> list[str]:
        """What a found record shows besides its name (a deal's stage, amount, close date)."""
        if object_type != ObjectType.DEAL:
            return []
        return [self.profile.native_field(object_type, f) for f in DEAL_FIELDS[:3]]

    def _mine(self, object_type: ObjectType) -> SearchFilter:
        """Records owned by the rep: their CRM owner id as their own connection knows it
        (HubSpot's owner id, Salesforce's user id), else found by email among the owners."""
        connection = self.guard.connection
        if connection.scope == ConnectionScope.USER:
            hubspot = self.session.provider == CrmProvider.HUBSPOT
            owner_id = connection.crm_owner_id if hubspot else connection.crm_user_id
            email = connection.crm_user_email
        else:
            owner_id, email = "", self.session.user.email
        if not owner_id and email:
            owner_id = owner_id_for_email(self.guard, connection, email) or ""
        if not owner_id:
            raise ChatRefusal(
                f"I cannot tell which {connection.get_provider_display()} user you are, so I "
                "cannot tell which records are yours: the connection chat uses does not name "
                f"a CRM user, and no CRM owner has the email {email or '(none)'}."
            )
        return SearchFilter(self.profile.native_field(object_type, "owner"), Operator.EQ, owner_id)

    def _found(self, found: list[Record], what: str) -> dict:
        items, remembered = [], []
        for record in found:
            it = Remembered(
                str(record.object_type), record.id, references.label_of(self.guard, record)
            )
            remembered.append(it)
            shown = {
                self.profile.canonical_field(record.object_type, name): self.shown(record, name)
                for name in self._details(record.object_type)
                if record.properties.get(name) not in (None, "")
            }
            items.append({"record": it.ref, "name": it.label, **shown})
            if not any(
                f["id"] == it.id and f["object_type"] == it.object_type for f in self.activity.found
            ):  # found again in the same turn: once
                self.activity.found.append(self._record_item(it))
        remember(self.session, remembered, it=remembered[0] if len(remembered) == 1 else None)
        if not found:
            summary = f"I found nothing for {what} within your access."
        elif len(found) == 1:
            summary = f"Found {items[0]['name']} ({items[0]['record']})."
        else:
            listed = "; ".join(f"{item['name']} ({item['record']})" for item in items)
            summary = f"Found {len(found)} records: {listed}. Which one do you mean?"
        return {"found": items, "summary": summary}

    # --- read_record -----------------------------------------------------------------------
    def read_record(self, args: ReadArgs) -> dict:
        target = references.resolve_record(self.session, self.guard, args.record)
        object_type = ObjectType(target.object_type)
        specs = self.specs(object_type)
        asked = list(args.fields) or list(_default_fields(object_type))
        natives, refused = [], []
        for said in asked:
            try:
                natives.append(references.resolve_field(self.guard, object_type, said, specs))
            except ChatRefusal as exc:
                if args.fields:  # a default field the policy hides is simply not shown
                    refused.append(exc.reason)
                    self.refuse(READ_RECORD, exc.reason)
        names = list(dict.fromkeys([*references.label_fields(self.guard, object_type), *natives]))
        record = self.guard.get(object_type, target.id, names)
        label = references.label_of(self.guard, record)
        values = {specs[n].label if n in specs else n: self.shown(record, n) for n in natives}
        it = Remembered(str(object_type), record.id, label)
        self.activity.read.append({**self._record_item(it), "values": values})
        remember(self.session, [it], it=it)
        shown = "; ".join(
            f"{name}: {value if value not in (None, '') else '(empty)'}"
            for name, value in values.items()
        )
        summary = f"{label}: {shown}." if shown else f"{label}: no field I may show you."
        if refused:
            summary += " " + " ".join(refused)
        return {"record": it.ref, "name": label, "values": values, "summary": summary}

    # --- propose_update --------------------------------------------------------------------
    def propose_update(self, args: ProposeArgs) -> dict:
        return self.proposer.propose(args)


def _default_fields(object_type: ObjectType) -> tuple[str, ...]:
    if object_type == ObjectType.DEAL:
        return DEAL_FIELDS
    if object_type == ObjectType.CONTACT:
        return ("email", "title", "phone")
    return ("domain", "industry")


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
        for error in exc.errors()[:5]
    )
