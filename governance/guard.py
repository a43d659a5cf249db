"""The one chokepoint between CRM Steward and a CRM (DESIGN.md invariant 1).

``Guard`` wraps the client of a resolved connection and applies the workspace's policy to
every call, whatever asked for it (a workflow, chat, a model's answer):

- objects out of scope are refused; properties that may not be read are never requested and
  are stripped from every result before anything else sees them;
- a write sends only properties in the write whitelist, and only if the action's toggle
  allows it (a stage change, a write to a closed deal, a create, clearing a value,
  associations); records outside the connection's access are refused by the layer below
  (Salesforce itself, or HubSpot record access) and reported the same way;
- in dry-run, writes are captured and not sent; when paused, nothing is sent;
- every call and every refusal is an audit event with its reason.

Refusals are data (``Refusal`` in a ``WriteOutcome``, or a ``Refused`` exception for a read
that cannot be answered at all); they are never swallowed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser

from audit.services import record_event
from governance.models import ObjectScope, Policy, Workspace
from integrations.crm import errors
from integrations.crm.base import StageInfo
from integrations.crm.types import (
    ObjectType,
    Page,
    Precondition,
    PropertySpec,
    Record,
    SearchQuery,
    WriteResult,
)


class RefusalCode(StrEnum):
    PAUSED = "paused"
    OBJECT_OUT_OF_SCOPE = "object_out_of_scope"
    NOT_READABLE = "not_readable"
    NOT_WRITABLE = "not_writable"
    CLEAR_VALUE = "clear_value"
    STAGE_CHANGE = "stage_change"
    CLOSED_DEAL = "closed_deal"
    CREATE = "create"
    ASSOCIATIONS = "associations"
    RECORD_ACCESS = "record_access"


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    reason: str
    object_type: str
    record_id: str | None = None
    field: str | None = None


class WriteStatus(StrEnum):
    SENT = "sent"
    DRY_RUN = "dry_run"
    REFUSED = "refused"  # nothing was sent
    CONFLICT = "conflict"  # the CRM value changed since it was read: nothing was sent
    FAILED = "failed"  # the CRM rejected the values


@dataclass(frozen=True)
class WriteOutcome:
    status: WriteStatus
    sent: Mapping[str, str | None] = field(default_factory=dict)  # or captured, in dry-run
    refusals: tuple[Refusal, ...] = ()
    result: WriteResult | None = None
    error: errors.CrmError | None = None


class Refused(Exception):
    """A read the policy does not allow at all (an object out of scope)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class Guard:
    def __init__(
        self,
        client,
        policy: Policy,
        *,
        workspace: Workspace,
        actor_kind: str = "agent",
        actor_user: AbstractBaseUser | None = None,
        connection=None,
        scope: str = "",
        labels: Mapping[str, str] | None = None,  # workflow_label, call_label, run_label
    ) -> None:
        self._client = _Counting(client)
        self.profile = client.profile
        self.policy = policy
        self.workspace = workspace
        self.connection = connection
        self._audit_fields = {
            "actor_kind": actor_kind,
            "actor_user": actor_user,
            "crm": str(self.profile.provider),
            "connection": connection,
            "scope": scope,
            **(labels or {}),
        }
        self._stages: dict[str, StageInfo] | None = None

    @property
    def requests(self) -> int:
        """How many CRM client calls this guard has made (what a run reports)."""
        return self._client.calls

    @classmethod
    def for_resolved(cls, resolved, policy: Policy, **kwargs) -> "Guard":
        """The guard over a ResolvedConnection (integrations.connections)."""
        connection = resolved.connection
        return cls(
            resolved.client(),
            policy,
            workspace=connection.workspace,
            actor_user=kwargs.pop("actor_user", resolved.acting_user),
            connection=connection,
            scope=connection.scope,
            **kwargs,
        )

    # --- audit ----------------------------------------------------------------------------
    def _audit(self, action: str, outcome: str, object_type: str = "", **fields: object) -> None:
        record_event(
            self.workspace,
            action=action,
            outcome=outcome,
            object_type=str(object_type),
            **self._audit_fields,
            **fields,
        )

    def _audit_unanswered(
        self, action: str, object_type, record_id: str, values: Mapping, exc: errors.CrmError
    ) -> None:
        """Every write attempt is an event with its outcome: a lost answer (a timeout, a
        dropped connection, a 5xx) is "unknown", since the write may have happened; a rate
        limit or any other refusal is "failed"."""
        if isinstance(exc, errors.Transient):
            outcome = "unknown"
            reason = (
                f"the CRM did not answer ({exc}): the write may have happened; the CRM is "
                "read before anything is sent again"
            )
        elif isinstance(exc, errors.RateLimited):
            outcome, reason = "failed", f"not written: the CRM is rate limiting ({exc})"
        else:
            outcome, reason = "failed", f"not written: {exc}"
        self._audit(
            action,
            outcome,
            object_type,
            record_id=record_id,
            after=dict(values),
            reason=reason,
            context={"fields": sorted(values)},
        )

    def audit_settled_write(
        self, object_type, record_id: str, field: str, value: object, *, reason: str, **context
    ) -> None:
        """A write whose answer was lost (or whose worker died), found in the CRM by a read."""
        self._audit(
            "crm.write",
            "ok",
            object_type,
            record_id=record_id,
            field=field,
            after=value,
            reason=reason,
            context={"settled_by_reading": True, **context},
        )

    def _refuse_read(self, object_type: str, code: RefusalCode, reason: str) -> Refused:
        refusal = Refusal(code, reason, str(object_type))
        self._audit("crm.read.denied", "denied", object_type, reason=reason, context={"code": code})
        return Refused(refusal)

    # --- reads ----------------------------------------------------------------------------
    def _require_read(self, object_type: ObjectType) -> None:
        if self.policy.object_scope(object_type) == ObjectScope.NONE:
            raise self._refuse_read(
                object_type,
                RefusalCode.OBJECT_OUT_OF_SCOPE,
                f"the policy gives CRM Steward no access to {object_type} records",
            )

    def readable(self, object_type: ObjectType, names: Sequence[str]) -> list[str]:
        return [name for name in names if self.policy.may_read(object_type, name)]

    def _strip(self, record: Record) -> Record:
        keep = set(self.readable(record.object_type, list(record.properties)))
        return replace(
            record,
            properties={k: v for k, v in record.properties.items() if k in keep},
            modified_at={k: v for k, v in record.modified_at.items() if k in keep},
        )

    def describe(self, object_type: ObjectType) -> list[PropertySpec]:
        self._require_read(object_type)
        specs = self._client.describe(object_type)
        self._audit("crm.describe", "ok", object_type)
        return [spec for spec in specs if self.policy.may_read(object_type, spec.name)]

    def search(self, query: SearchQuery) -> Page:
        self._require_read(query.object_type)
        for group in query.filter_groups:
            for condition in group:
                if not self.policy.may_read(query.object_type, condition.property):
                    raise self._refuse_read(
                        query.object_type,
                        RefusalCode.NOT_READABLE,
                        f"cannot search by {condition.property}: the policy does not let "
                        f"CRM Steward read it",
                    )
        asked = replace(query, properties=tuple(self.readable(query.object_type, query.properties)))
        page = self._client.search(asked)
        records = tuple(self._strip(record) for record in page.records)
        self._audit(
            "crm.search",
            "ok",
            query.object_type,
            context={"found": [r.id for r in records][:100], "total": page.total},
        )
        return replace(page, records=records)

    def get(self, object_type: ObjectType, record_id: str, properties: Sequence[str]) -> Record:
        self._require_read(object_type)
        record = self._strip(
            self._client.get(object_type, record_id, self.readable(object_type, properties))
        )
        self._audit(
            "crm.read",
            "ok",
            object_type,
            record_id=record_id,
            context={"properties": sorted(record.properties)},
        )
        return record

    def get_many(
        self, object_type: ObjectType, record_ids: Sequence[str], properties: Sequence[str]
    ) -> list[Record]:
        self._require_read(object_type)
        records = self._client.get_many(
            object_type, record_ids, self.readable(object_type, properties)
        )
        self._audit(
            "crm.read", "ok", object_type, context={"records": [r.id for r in records][:100]}
        )
        return [self._strip(record) for record in records]

    def associated_ids(
        self, object_type: ObjectType, record_id: str, to_type: ObjectType
    ) -> list[str]:
        self._require_read(object_type)
        self._require_read(to_type)
        ids = self._client.associated_ids(object_type, record_id, to_type)
        self._audit(
            "crm.read.associations",
            "ok",
            object_type,
            record_id=record_id,
            context={"to": str(to_type), "ids": ids[:100]},
        )
        return ids

    def associations_many(
        self, object_type: ObjectType, record_ids: Sequence[str], to_type: ObjectType
    ) -> dict[str, list[str]]:
        self._require_read(object_type)
        self._require_read(to_type)
        found = self._client.associations_many(object_type, record_ids, to_type)
        pairs = [[source, target] for source, targets in found.items() for target in targets]
        self._audit(
            "crm.read.associations",
            "ok",
            object_type,
            context={"to": str(to_type), "ids": pairs[:100], "records": len(found)},
        )
        return found

    def owners(self):
        owners = self._client.owners()
        self._audit("crm.read.owners", "ok")
        return owners

    def prime_stages(self, stages: Sequence[StageInfo]) -> None:
        """Stage metadata read earlier through a guard on the same connection."""
        if self._stages is None:
            self._stages = {stage.value: stage for stage in stages}

    def deal_stages(self) -> list[StageInfo]:
        if self._stages is None:
            self._stages = {stage.value: stage for stage in self._client.deal_stages()}
            self._audit("crm.read.stages", "ok", ObjectType.DEAL)
        return list(self._stages.values())

    # --- writes ---------------------------------------------------------------------------
    def _field_refusals(
        self,
        object_type: ObjectType,
        record_id: str | None,
        properties: Mapping,
        *,
        creating: bool = False,
    ) -> list[Refusal]:
        # A new record's stage is not a stage change, and its empty fields clear nothing.
        refusals = []
        stage_field = self.profile.native_field(ObjectType.DEAL, "stage")
        for name, value in properties.items():
            reason = code = None
            if not self.policy.may_write(object_type, name):
                code, reason = RefusalCode.NOT_WRITABLE, f"{name} is not in the write whitelist"
            elif not creating and value in (None, "") and not self.policy.allow_clear_values:
                code, reason = RefusalCode.CLEAR_VALUE, "the policy does not allow clearing values"
            elif (
                not creating
                and object_type == ObjectType.DEAL
                and name == stage_field
                and not self.policy.allow_stage_change
            ):
                code, reason = RefusalCode.STAGE_CHANGE, "the policy does not allow stage changes"
            if code is not None:
                refusals.append(Refusal(code, reason, str(object_type), record_id, name))
        return refusals

    def _whole_write_refusal(
        self, object_type: ObjectType, record_id: str | None, properties: Mapping
    ) -> Refusal | None:
        if self.policy.paused:
            return Refusal(
                RefusalCode.PAUSED,
                "CRM Steward is paused for this CRM",
                str(object_type),
                record_id,
            )
        if self.policy.object_scope(object_type) != ObjectScope.READ_WRITE:
            return Refusal(
                RefusalCode.OBJECT_OUT_OF_SCOPE,
                f"the policy does not let CRM Steward change {object_type} records",
                str(object_type),
                record_id,
            )
        return None

    def _closed_deal(
        self, record_id: str, precondition: Precondition | None = None
    ) -> Refusal | None:
        if self.policy.allow_update_closed:
            return None
        stage_field = self.profile.native_field(ObjectType.DEAL, "stage")
        if precondition is not None and stage_field in precondition.expected:
            # The write is conditional on the stage still being this value (HubSpot compares
            # it, Salesforce refuses any change since the read), so no extra read is needed.
            stage = precondition.expected[stage_field]
        else:
            current = self._client.get(ObjectType.DEAL, record_id, [stage_field])
            # Read for the guard's own check; the value goes no further than this method.
            self._audit(
                "crm.read",
                "ok",
                ObjectType.DEAL,
                record_id=record_id,
                context={"properties": [stage_field], "purpose": "closed-deal check"},
            )
            stage = current.properties.get(stage_field)
        self.deal_stages()
        info = (self._stages or {}).get(stage or "")
        if info is not None and info.closed:
            return Refusal(
                RefusalCode.CLOSED_DEAL,
                f"the deal is closed ({info.label}) and the policy does not allow "
                "updating closed deals",
                "deal",
                record_id,
            )
        return None

    def _denied(self, refusals: Sequence[Refusal], properties: Mapping) -> None:
        for refusal in refusals:
            fields = [refusal.field] if refusal.field else list(properties) or [None]
            for name in fields:
                self._audit(
                    "crm.write.denied",
                    "denied",
                    refusal.object_type,
                    record_id=refusal.record_id or "",
                    field=name or "",
                    after=properties.get(name) if name else None,
                    reason=refusal.reason,
                    context={"code": refusal.code},
                )

    def vet_update(
        self,
        object_type: ObjectType,
        record_id: str | None,
        properties: Mapping[str, str | None],
        *,
        current_stage: str | None = None,
        creating: bool = False,
    ) -> list[Refusal]:
        """What the policy would refuse of this write, checked when a change is planned,
        long before it is sent. Nothing is sent; each refusal is audited. A pause is not a
        refusal here: paused changes wait, and the guard holds them back at apply time."""
        refusals: list[Refusal] = []
        if self.policy.object_scope(object_type) != ObjectScope.READ_WRITE:
            refusals.append(
                Refusal(
                    RefusalCode.OBJECT_OUT_OF_SCOPE,
                    f"the policy does not let CRM Steward change {object_type} records",
                    str(object_type),
                    record_id,
                )
            )
        elif creating and not self.policy.allow_create:
            refusals.append(
                Refusal(
                    RefusalCode.CREATE,
                    "the policy does not allow creating records",
                    str(object_type),
                )
            )
        elif object_type == ObjectType.DEAL and current_stage and not creating:
            self.deal_stages()
            info = (self._stages or {}).get(current_stage)
            if info is not None and info.closed and not self.policy.allow_update_closed:
                refusals.append(
                    Refusal(
                        RefusalCode.CLOSED_DEAL,
                        f"the deal is closed ({info.label}) and the policy does not allow "
                        "updating closed deals",
                        "deal",
                        record_id,
                    )
                )
        if refusals:
            for name in properties:
                refusals_for = [replace(refusal, field=name) for refusal in refusals]
                self._denied(refusals_for, properties)
            return [replace(r, field=name) for r in refusals for name in properties]
        refusals = self._field_refusals(object_type, record_id, properties, creating=creating)
        self._denied(refusals, properties)
        return refusals

    def update(
        self,
        object_type: ObjectType,
        record_id: str,
        properties: Mapping[str, str | None],
        *,
        precondition: Precondition | None = None,
    ) -> WriteOutcome:
        whole = self._whole_write_refusal(object_type, record_id, properties)
        if whole is None and object_type == ObjectType.DEAL:
            try:
                whole = self._closed_deal(record_id, precondition)
            except (errors.NotFound, errors.PermissionDenied) as exc:
                whole = Refusal(RefusalCode.RECORD_ACCESS, exc.message, str(object_type), record_id)
        if whole is not None:
            self._denied([whole], properties)
            return WriteOutcome(WriteStatus.REFUSED, refusals=(whole,))
        refusals = self._field_refusals(object_type, record_id, properties)
        self._denied(refusals, properties)
        refused = {refusal.field for refusal in refusals}
        allowed = {name: value for name, value in properties.items() if name not in refused}
        if not allowed:
            return WriteOutcome(WriteStatus.REFUSED, refusals=tuple(refusals))
        return self._send_update(object_type, record_id, allowed, precondition, refusals)

    def _send_update(self, object_type, record_id, allowed, precondition, refusals):
        if self.policy.dry_run:
            for name, value in allowed.items():
                self._audit(
                    "crm.write.dry_run",
                    "dry_run",
                    object_type,
                    record_id=record_id,
                    field=name,
                    after=value,
                    reason="dry-run: captured, not sent",
                )
            return WriteOutcome(WriteStatus.DRY_RUN, allowed, tuple(refusals))
        try:
            result = self._client.update(object_type, record_id, allowed, precondition=precondition)
        except (errors.NotFound, errors.PermissionDenied) as exc:
            access = Refusal(RefusalCode.RECORD_ACCESS, exc.message, str(object_type), record_id)
            self._denied([access], allowed)
            return WriteOutcome(WriteStatus.REFUSED, refusals=(*refusals, access), error=exc)
        except errors.Conflict as exc:
            # Nothing was written, and nothing failed: the CRM kept a newer value, and the
            # apply step reads the record again to write only the fields nobody changed.
            self._audit(
                "crm.write.held_back",
                "denied",
                object_type,
                record_id=record_id,
                reason=f"not written: the record changed since it was read ({exc.message}); "
                "it is read again, and only fields nobody changed are written",
                context={"fields": sorted(allowed)},
            )
            return WriteOutcome(WriteStatus.CONFLICT, refusals=tuple(refusals), error=exc)
        except errors.ValidationFailed as exc:
            self._audit(
                "crm.write",
                "failed",
                object_type,
                record_id=record_id,
                reason=str(exc),
                context={"fields": exc.fields},
            )
            return WriteOutcome(WriteStatus.FAILED, refusals=tuple(refusals), error=exc)
        except errors.CrmError as exc:
            self._audit_unanswered("crm.write", object_type, record_id, allowed, exc)
            raise
        for name, value in allowed.items():
            self._audit(
                "crm.write", "ok", object_type, record_id=record_id, field=name, after=value
            )
        return WriteOutcome(WriteStatus.SENT, allowed, tuple(refusals), result)

    def create(
        self,
        object_type: ObjectType,
        properties: Mapping[str, str | None],
        *,
        associations: Mapping[ObjectType, Sequence[str]] | None = None,
    ) -> WriteOutcome:
        whole = self._whole_write_refusal(object_type, None, properties)
        if whole is None and not self.policy.allow_create:
            whole = Refusal(
                RefusalCode.CREATE, "the policy does not allow creating records", str(object_type)
            )
        if whole is None and associations and not self.policy.allow_create_associations:
            whole = Refusal(
                RefusalCode.ASSOCIATIONS,
                "the policy does not allow creating associations",
                str(object_type),
            )
        refusals = (
            [whole] if whole else self._field_refusals(object_type, None, properties, creating=True)
        )
        if refusals:
            # A record is created whole or not at all: a partial record would be a new fact
            # nobody approved.
            self._denied(refusals, properties)
            return WriteOutcome(WriteStatus.REFUSED, refusals=tuple(refusals))
        if self.policy.dry_run:
            self._audit(
                "crm.create.dry_run",
                "dry_run",
                object_type,
                after=dict(properties),
                reason="dry-run: captured, not sent",
            )
            return WriteOutcome(WriteStatus.DRY_RUN, dict(properties))
        try:
            result = self._client.create(object_type, properties, associations=associations)
        except (errors.NotFound, errors.PermissionDenied) as exc:
            access = Refusal(RefusalCode.RECORD_ACCESS, exc.message, str(object_type))
            self._denied([access], properties)
            return WriteOutcome(WriteStatus.REFUSED, refusals=(access,), error=exc)
        except errors.CrmError as exc:
            self._audit_unanswered("crm.create", object_type, "", properties, exc)
            raise
        self._audit("crm.create", "ok", object_type, record_id=result.id, after=dict(properties))
        return WriteOutcome(WriteStatus.SENT, dict(properties), result=result)


class _Counting:
    """Passes every call through to the client, counting them."""

    def __init__(self, client) -> None:
        self._inner = client
        self.calls = 0

    def __getattr__(self, name: str):
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            self.calls += 1
            return attribute(*args, **kwargs)

        return counted
