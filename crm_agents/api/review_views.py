"""The review queue over the API: change sets and their proposals, and the decisions on
them (governance/review.py). Anyone in the workspace reads; RevOps, admins and API keys
decide. A decision the service refuses (already decided, no reason, a value the property
cannot hold) is a 400 whose ``detail`` says why."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from crm_agents.api import serializers as s
from crm_agents.api.access import require_configure
from crm_agents.api.base import ScopedViewSet, list_filters
from governance import review
from governance.review_models import ChangeProposal, ChangeSet


class ReviewRefused(APIException):
    status_code = 400
    default_code = "refused"


@extend_schema_view(
    list=extend_schema(
        summary="List change sets",
        parameters=list_filters("status", "run", "provider"),
    ),
    retrieve=extend_schema(summary="A change set with its proposals"),
)
class ChangeSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    model = ChangeSet
    filter_fields = {"status": "status", "run": "run_id", "provider": "provider"}

    def base_queryset(self):
        return ChangeSet.objects.select_related("decided_by", "requested_by")

    def get_serializer_class(self):
        return s.ChangeSetSerializer if self.action == "list" else s.ChangeSetDetailSerializer

    def _decided(self, request: Request, change_set: ChangeSet) -> Response:
        change_set = self.base_queryset().get(pk=change_set.pk)
        return Response(self.get_serializer(change_set).data)

    @extend_schema(
        summary="Approve every pending proposal of a change set",
        request=None,
        responses={200: s.ChangeSetDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        change_set = self.get_object()
        require_configure(request, change_set.workspace_id, "Approving changes")
        try:
            review.do_approve_change_set(change_set, actor=request.user)
        except review.ReviewError as exc:
            raise ReviewRefused(str(exc)) from None
        return self._decided(request, change_set)

    @extend_schema(
        summary="Reject every pending proposal of a change set, with a reason",
        request=s.RejectSerializer,
        responses={200: s.ChangeSetDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        change_set = self.get_object()
        require_configure(request, change_set.workspace_id, "Rejecting changes")
        body = s.RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            review.do_reject_change_set(
                change_set, actor=request.user, reason=body.validated_data["reason"]
            )
        except review.ReviewError as exc:
            raise ReviewRefused(str(exc)) from None
        return self._decided(request, change_set)


@extend_schema_view(retrieve=extend_schema(summary="A proposed change of one field"))
class ChangeProposalViewSet(mixins.RetrieveModelMixin, ScopedViewSet):
    model = ChangeProposal
    serializer_class = s.ChangeProposalSerializer

    def base_queryset(self):
        return ChangeProposal.objects.select_related("change_set", "decided_by")

    @extend_schema(
        summary="Decide on one proposal: approve, reject (with a reason) or edit",
        description="`edit` approves `value` instead of the proposed value, after checking "
        "it against the CRM property's type (a number, a date, one of the options…).",
        request=s.DecisionSerializer,
        responses={200: s.ChangeProposalSerializer},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str) -> Response:
        proposal = self.get_object()
        require_configure(request, proposal.workspace_id, "Deciding on a change")
        body = s.DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            review.do_decide_proposal(
                proposal,
                body.validated_data["decision"],
                actor=request.user,
                reason=body.validated_data["reason"],
                value=body.validated_data["value"],
            )
        except review.ReviewError as exc:
            raise ReviewRefused(str(exc)) from None
        proposal = self.base_queryset().get(pk=proposal.pk)
        return Response(self.get_serializer(proposal).data)
