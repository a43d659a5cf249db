"""What the API shows. Field lists are explicit, so a column added to a model never appears
in a response by accident; a run's prompt and the model's raw answers are shown to RevOps,
admins and API keys only (``privileged`` in the serializer context)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request

from crm_agents.call_match_models import CallMatch
from crm_agents.models import AgentRun, Call, FieldRule, Workflow
from governance.review_models import ChangeProposal, ChangeSet


def absolute_url(request: Request | None, name: str, pk: int) -> str:
    path = reverse(name, args=[pk])
    return request.build_absolute_uri(path) if request is not None else path


def _url(serializer: serializers.Serializer, name: str, pk: int) -> str:
    return absolute_url(serializer.context.get("request"), name, pk)


class _PrivilegedFieldsMixin:
    privileged_fields: tuple[str, ...] = ()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not self.context.get("privileged"):
            for name in self.privileged_fields:
                data.pop(name, None)
        return data


class RunSummarySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = ["id", "workflow", "workflow_label", "is_test", "status", "url"]
        read_only_fields = fields

    def get_url(self, run: AgentRun) -> str:
        return _url(self, "run-detail", run.pk)


class CallSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Call
        fields = [
            "id",
            "url",
            "workspace",
            "external_id",
            "title",
            "started_at",
            "duration_s",
            "owner_email",
            "source",
            "received_at",
        ]
        read_only_fields = fields

    def get_url(self, call: Call) -> str:
        return _url(self, "call-detail", call.pk)


class CandidateSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The record's id in the CRM.")
    name = serializers.CharField()
    score = serializers.FloatField(help_text="The sum of the signals it has.")
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="A sentence per signal: why it ranks here."
    )


class CallMatchSerializer(serializers.ModelSerializer):
    """Which record the call is about on one CRM and object type, matched once for all of
    the call's workflows there, and why."""

    record_id = serializers.CharField(
        source="winner_id",
        help_text="The record chosen; empty when none was (no candidate, or a person must "
        "choose: see the runs waiting on a question).",
    )
    record_name = serializers.CharField(source="winner_name")
    candidates = CandidateSerializer(many=True, read_only=True)
    matched_by_run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = CallMatch
        fields = [
            "provider",
            "object_type",
            "record_id",
            "record_name",
            "reason",
            "confidence",
            "ambiguous",
            "candidates",
            "matched_by_run",
            "matched_at",
        ]
        read_only_fields = fields


class CallDetailSerializer(CallSerializer):
    runs = RunSummarySerializer(many=True, read_only=True)
    matches = CallMatchSerializer(
        many=True,
        read_only=True,
        source="finished_matches",
        help_text="The record matched on each CRM and object type, once for the call.",
    )

    class Meta(CallSerializer.Meta):
        fields = [*CallSerializer.Meta.fields, "attendees", "transcript", "runs", "matches"]
        read_only_fields = fields


class CallAcceptedSerializer(serializers.Serializer):
    """The answer to a submitted call."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    created = serializers.BooleanField(help_text="False: this external id was already received.")
    url = serializers.URLField()
    runs = RunSummarySerializer(many=True)


class RunSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "url",
            "workspace",
            "call",
            "workflow",
            "workflow_label",
            "provider",
            "is_test",
            "status",
            "status_reason",
            "record_id",
            "record_name",
            "crm_requests",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, run: AgentRun) -> str:
        return _url(self, "run-detail", run.pk)


class RunDetailSerializer(_PrivilegedFieldsMixin, RunSerializer):
    privileged_fields = ("prompt", "raw_answer")
    change_sets = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    waits_on = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The change set asking which record the call meant, that this run waits "
        "on; one answer (POST /change-sets/{id}/choose/) continues every run waiting on it.",
    )

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "waits_on",
            "connection",
            "candidates",
            "match_confidence",
            "match_reason",
            "current_values",
            "decisions",
            "prompt_hash",
            "prompt_version",
            "model",
            "answer_cached",
            "prompt_tokens",
            "completion_tokens",
            "timings",
            "error",
            "attempts",
            "started_at",
            "change_sets",
            "prompt",
            "raw_answer",
        ]
        read_only_fields = fields


class ChangeProposalSerializer(_PrivilegedFieldsMixin, serializers.ModelSerializer):
    privileged_fields = ("raw_value",)
    decided_by = serializers.StringRelatedField()
    value_to_write = serializers.CharField(allow_null=True, read_only=True)

    class Meta:
        model = ChangeProposal
        fields = [
            "id",
            "change_set",
            "field",
            "native_field",
            "label",
            "write_mode",
            "review_mode",
            "current_value",
            "current_modified_at",
            "proposed_value",
            "edited_value",
            "value_to_write",
            "raw_value",
            "evidence",
            "evidence_start",
            "confidence",
            "status",
            "status_reason",
            "superseded_by",
            "decided_by",
            "decided_at",
            "applied_value",
            "applied_at",
            "crm_value_after",
        ]
        read_only_fields = fields


class ChangeSetSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    decided_by = serializers.StringRelatedField()
    requested_by = serializers.StringRelatedField(
        help_text="The rep who asked for these changes in chat (null for a workflow's)."
    )

    class Meta:
        model = ChangeSet
        fields = [
            "id",
            "url",
            "workspace",
            "run",
            "provider",
            "object_type",
            "operation",
            "record_id",
            "record_name",
            "call_title",
            "call_started_at",
            "workflow_label",
            "owner_email",
            "requested_by",
            "is_test",
            "status",
            "field_count",
            "lowest_confidence",
            "read_at",
            "decided_by",
            "decided_at",
            "reject_reason",
            "applied_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_url(self, change_set: ChangeSet) -> str:
        return _url(self, "change-set-detail", change_set.pk)


class ChangeSetDetailSerializer(ChangeSetSerializer):
    proposals = serializers.SerializerMethodField()

    class Meta(ChangeSetSerializer.Meta):
        fields = [*ChangeSetSerializer.Meta.fields, "create_associations", "proposals"]
        read_only_fields = fields

    @extend_schema_field(ChangeProposalSerializer(many=True))
    def get_proposals(self, change_set: ChangeSet) -> list[dict]:
        proposals = change_set.proposals.select_related("decided_by").order_by("pk")
        return ChangeProposalSerializer(proposals, many=True, context=self.context).data


class ChoiceResultSerializer(serializers.Serializer):
    """What one answer to "which record?" did for the call."""

    question = ChangeSetDetailSerializer(help_text="The question, now answered.")
    continued_runs = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The runs of the call that go on with the chosen record, the asking one first.",
    )
    change_sets = ChangeSetSerializer(
        many=True,
        help_text="The change sets those runs produced so far (all of them at once when runs "
        "are processed in-process); poll /runs/{id}/ otherwise.",
    )


class FieldRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = FieldRule
        fields = [
            "id",
            "field",
            "instruction",
            "write_mode",
            "read_dependencies",
            "order",
            "review_override",
            "paused",
        ]
        read_only_fields = fields


class WorkflowSerializer(serializers.ModelSerializer):
    rules = FieldRuleSerializer(many=True, read_only=True)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "workspace",
            "name",
            "key",
            "provider",
            "object_type",
            "template",
            "trigger_external_attendees",
            "trigger_title_contains",
            "trigger_min_duration_s",
            "trigger_owner_team",
            "no_match",
            "enabled",
            "paused",
            "dry_run",
            "rules",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- answers to actions, and the token body --------------------------------------------------
class RunAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    call = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.URLField()


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    prefix = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)


class IssuedTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text="Shown once: store it now, it cannot be shown again."
    )
