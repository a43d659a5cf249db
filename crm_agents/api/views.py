"""The agent's REST API: calls in, runs and workflows out, workflow tests.

Views validate, scope and call services (crm_agents.services) and tasks; they never save a
governed row themselves. Every queryset starts from the caller's workspaces
(crm_agents/api/access.py).
"""

from uuid import uuid4

from django.db import transaction
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from crm_agents import services, tasks
from crm_agents.api import serializers as s
from crm_agents.api.access import require_configure, target_workspace
from crm_agents.api.base import ScopedViewSet, with_workspace
from crm_agents.api.filters import ListFilter
from crm_agents.api.payloads import CallSubmission, WorkflowTestRequest, parse
from crm_agents.call_match_models import CallMatch
from crm_agents.models import AgentRun, Call, CallSource, RunStatus, Workflow
from governance import owed
from governance.models import CrmProvider


@extend_schema_view(
    list=extend_schema(summary="List calls"),
    retrieve=extend_schema(summary="A call, with its attendees, transcript and runs"),
)
class CallViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    model = Call
    list_filters = with_workspace(
        source=ListFilter("source", CallSource),
        external_id=ListFilter("external_id", description="Only the call with this id."),
    )

    def base_queryset(self) -> QuerySet:
        if self.action == "retrieve":
            matched = CallMatch.objects.filter(matched_at__isnull=False).order_by(
                "provider", "object_type"
            )
            return Call.objects.prefetch_related(
                "runs", Prefetch("matches", queryset=matched, to_attr="finished_matches")
            )
        return Call.objects.all()

    def get_serializer_class(self):
        return s.CallDetailSerializer if self.action == "retrieve" else s.CallSerializer

    @extend_schema(
        summary="Submit a call",
        description="Stores the call once per external id and starts a run for every "
        "workflow whose trigger matches. Submitting the same external id again returns the "
        "first call with `created: false` and starts nothing. Invalid bodies get 400 with "
        "messages keyed by the dotted path of each bad value (`attendees.1.email`).",
        request=CallSubmission,
        responses={202: s.CallAcceptedSerializer, 200: s.CallAcceptedSerializer},
    )
    def create(self, request: Request) -> Response:
        payload = parse(CallSubmission, request.data)
        workspace = target_workspace(request, payload.workspace)
        call, created = services.do_submit_call(workspace, payload, actor=request.user)
        if created:
            services.start_runs(call)
        runs = call.runs.filter(is_test=False).order_by("pk")
        body = {
            "id": call.pk,
            "external_id": call.external_id,
            "created": created,
            "url": s.absolute_url(request, "call-detail", call.pk),
            "runs": s.RunSummarySerializer(runs, many=True, context={"request": request}).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="List runs"),
    retrieve=extend_schema(
        summary="A run: candidates, chosen record, model, tokens, timings, errors",
        description="`prompt` and `raw_answer` are included for RevOps, admins and API keys.",
    ),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    model = AgentRun
    list_filters = with_workspace(
        status=ListFilter("status", RunStatus),
        call=ListFilter("call_id", "id", "Only this call's runs."),
        workflow=ListFilter("workflow_id", "id", "Only this workflow's runs."),
        is_test=ListFilter("is_test", "bool", "Only TEST runs (true) or only real ones (false)."),
    )

    def base_queryset(self) -> QuerySet:
        if self.action == "retrieve":
            return AgentRun.objects.prefetch_related("change_sets")
        return AgentRun.objects.all()

    def get_serializer_class(self):
        return s.RunDetailSerializer if self.action == "retrieve" else s.RunSerializer


@extend_schema_view(
    list=extend_schema(summary="List workflows"),
    retrieve=extend_schema(summary="A workflow with its field rules"),
)
class WorkflowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    model = Workflow
    serializer_class = s.WorkflowSerializer
    list_filters = with_workspace(provider=ListFilter("provider", CrmProvider))

    def base_queryset(self) -> QuerySet:
        return Workflow.objects.prefetch_related("rules")

    @extend_schema(
        summary="Test a workflow (TEST run, nothing written)",
        description="Runs the whole pipeline on a past call (`call_id`) or a pasted one "
        "(`call`, stored with source `test` and its own id `test-<uuid>`). The run reads the "
        "CRM and proposes, and never writes. RevOps, admins and API keys only.",
        request=WorkflowTestRequest,
        responses={202: s.RunAcceptedSerializer},
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        workflow = self.get_object()
        require_configure(request, workflow.workspace_id, "Testing a workflow")
        body = parse(WorkflowTestRequest, request.data)
        with transaction.atomic():
            if body.call is not None:
                pasted = body.call.model_copy(update={"external_id": f"test-{uuid4()}"})
                call, _ = services.do_submit_call(
                    workflow.workspace, pasted, source=CallSource.TEST, actor=request.user
                )
            else:
                call = Call.objects.filter(workspace=workflow.workspace, pk=body.call_id).first()
                if call is None:
                    raise NotFound({"call_id": [f"No call with id {body.call_id}."]})
            run = services.do_create_test_run(workflow, call)
        owed.send(tasks.run_workflow, run.pk)
        run.refresh_from_db(fields=["status"])
        url = s.absolute_url(request, "run-detail", run.pk)
        return Response(
            {"id": run.pk, "call": call.pk, "status": run.status, "url": url},
            status=status.HTTP_202_ACCEPTED,
        )
