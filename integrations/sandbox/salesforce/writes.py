"""Creating, updating and deleting records as the REST API does, checks in Salesforce's order.

A write body is checked the way Salesforce processes it: names first (a field that does
not exist, or that field-level security hides, is ``INVALID_FIELD``), then writability
(``INVALID_FIELD_FOR_INSERT_UPDATE`` naming every field that is read-only for the user),
then each value (type, length, restricted picklist, id form), then references (they must
exist and be visible), then required fields. The first failing step answers. The same
checks serve ``/sobjects`` and the ``composite/sobjects`` collections.
"""

from collections.abc import Mapping

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, SandboxError
from integrations.sandbox.models import SandboxRecord, SandboxUser
from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.org import Org
from integrations.sandbox.salesforce.values import coerce

_READ_ONLY_OBJECTS = ("User", "OpportunityStage", "UserRecordAccess")


def _invalid_type_for(operation: str, object_name: str) -> SandboxError:
    label = metadata.global_entry(object_name)["label"]
    return SandboxError(
        400, f"entity type cannot be {operation}: {label}", "INVALID_TYPE_FOR_OPERATION"
    )


class Writer:
    """Writes on behalf of the call's user, noting each one in the request log."""

    def __init__(self, org: Org, call: Call) -> None:
        self.org = org
        self.call = call

    @property
    def user(self) -> SandboxUser:
        return self.org.user

    def create(self, object_name: str, body: object) -> SandboxRecord:
        if object_name in _READ_ONLY_OBJECTS:
            raise _invalid_type_for("inserted", object_name)
        values = self._checked(object_name, body, creating=True)
        fields = self.org.all_fields(object_name)
        if "OwnerId" in fields and not values.get("OwnerId"):
            values["OwnerId"] = self.user.crm_user_id
        if object_name == "Opportunity":
            self._stage_defaults(values, values)
        missing = [
            name
            for name, prop in fields.items()
            if prop.type != "boolean"
            and not prop.extra.get("nillable", True)
            and prop.extra.get("createable")
            and not prop.extra.get("defaultedOnCreate")
            and values.get(name) is None
        ]
        if missing:
            raise _required(missing)
        stored = {
            **values,
            "CreatedById": self.user.crm_user_id,
            "LastModifiedById": self.user.crm_user_id,
        }
        record = store.create_record(
            self.org.account,
            object_name,
            stored,
            owner=self._owner(values.get("OwnerId")),
            source_type="API",
            source_id=f"userId:{self.user.crm_user_id}",
        )
        self.call.note_write(object_name, record.crm_id, values)
        return record

    def update(self, record: SandboxRecord, body: object) -> dict[str, object]:
        """Write ``body`` into ``record``, which the caller locked (``store.lock_record``)
        before checking it (preconditions, deletion)."""
        object_name = record.object_name
        if object_name in _READ_ONLY_OBJECTS:
            raise _invalid_type_for("updated", object_name)
        changes = self._checked(object_name, body, creating=False)
        fields = self.org.all_fields(object_name)
        cleared = [
            name
            for name, value in changes.items()
            if value is None and not fields[name].extra.get("nillable", True)
        ]
        if cleared:
            raise _required(cleared)
        if object_name == "Opportunity" and "StageName" in changes:
            self._stage_defaults(changes, {**record.values, **changes})
        store.update_record(
            record,
            {**changes, "LastModifiedById": self.user.crm_user_id},
            owner=self._owner(changes["OwnerId"]) if "OwnerId" in changes else store.UNCHANGED,
            source_type="API",
            source_id=f"userId:{self.user.crm_user_id}",
        )
        self.call.note_write(object_name, record.crm_id, changes)
        return changes

    def delete(self, record: SandboxRecord) -> None:
        if record.object_name in _READ_ONLY_OBJECTS:
            raise _invalid_type_for("deleted", record.object_name)
        self._delete_with_children(record)
        self.call.note_write(record.object_name, record.crm_id, {"IsDeleted": True})

    def _delete_with_children(self, record: SandboxRecord) -> None:
        store.delete_record(record)
        for child_object, lookup in metadata.cascade_children(record.object_name):
            children = SandboxRecord.objects.filter(
                account=self.org.account,
                object_name=child_object,
                deleted_at__isnull=True,
                **{f"values__{lookup}": record.crm_id},
            )
            for child in children:
                self._delete_with_children(child)

    # --- Checks ---------------------------------------------------------------------------

    def _checked(self, object_name: str, body: object, *, creating: bool) -> dict[str, object]:
        if not isinstance(body, Mapping):
            token = "START_ARRAY" if isinstance(body, list) else "VALUE_STRING"
            raise SandboxError(
                400, f"Cannot deserialize instance of SObject out of {token}", "JSON_PARSER_ERROR"
            )
        named: dict[str, object] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            prop = self.org.visible_field(object_name, key)
            if prop is None:
                raise SandboxError(
                    400,
                    f"No such column '{key}' on sobject of type {object_name}",
                    "INVALID_FIELD",
                    fields=[],
                )
            named[prop.name] = value
        allowed = "createable" if creating else "updateable"
        locked = [
            name
            for name in named
            if not self.org.all_fields(object_name)[name].extra.get(allowed)
            or self.org.field_access(object_name, name) == "read_only"
        ]
        if locked:
            raise SandboxError(
                400,
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                fields=locked,
            )
        values: dict[str, object] = {}
        for name, value in named.items():
            field = self.org.describe_field(self.org.all_fields(object_name)[name])
            coerced = coerce(field, value)
            if field["type"] == "boolean" and coerced is None:
                coerced = False
            if field["type"] == "reference" and coerced is not None:
                coerced = self._reference(field, str(coerced))
            values[name] = coerced
        return values

    def _reference(self, field: dict, value: str) -> str:
        """The full id of an existing record the user may see, or Salesforce's refusal."""
        targets = {
            store.SALESFORCE_KEY_PREFIXES.get(target, ""): target for target in field["referenceTo"]
        }
        target = targets.get(value[:3])
        if target is None:
            raise SandboxError(
                400,
                f"{field['label']}: id value of incorrect type: {value}",
                "FIELD_INTEGRITY_EXCEPTION",
                fields=[field["name"]],
            )
        invalid = SandboxError(
            400, "invalid cross reference id", "INVALID_CROSS_REFERENCE_KEY", fields=[]
        )
        if target == "User":
            user = self.org.find_user(value)
            if user is None:
                raise invalid
            if not user.is_active:
                raise SandboxError(
                    400, "operation performed with inactive user", "INACTIVE_OWNER_OR_USER"
                )
            return user.crm_user_id
        record = self.org.find(target, value)
        if record is None or record.deleted_at is not None:
            raise invalid
        if not self.org.can_access(record):
            raise SandboxError(
                400,
                "insufficient access rights on cross-reference id",
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                fields=[],
            )
        return record.crm_id

    def _owner(self, owner_id: object) -> SandboxUser | None:
        return self.org.find_user(str(owner_id)) if owner_id else None

    def _stage_defaults(self, changes: dict[str, object], merged: Mapping[str, object]) -> None:
        """A new stage brings its default probability and forecast category, unless the same
        write sets them, as Salesforce does."""
        stage = self.org.stages.get(str(merged.get("StageName") or ""))
        if stage is None:
            return
        if "Probability" not in changes:
            changes["Probability"] = stage["DefaultProbability"]
        if "ForecastCategoryName" not in changes:
            changes["ForecastCategoryName"] = stage["ForecastCategoryName"]


def _required(names: list[str]) -> SandboxError:
    return SandboxError(
        400,
        f"Required fields are missing: [{', '.join(names)}]",
        "REQUIRED_FIELD_MISSING",
        fields=names,
    )
