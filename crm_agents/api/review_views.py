"""The review queue over the API: change sets and their proposals, and the decisions on
them (governance/review.py). Anyone in the workspace reads; RevOps, admins and API keys
decide. A decision the service refuses gets a ``detail`` saying why: 409 when the object's
state no longer allows it (already decided, nothing pending, a TEST set, no record chosen
yet), 400 otherwise (a value the property cannot hold, a record that is not a candidate)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from crm_agents.api import serializers as s
from crm_agents.api.access import require_configure
from crm_agents.api.base import ScopedViewSet, with_workspace
from crm_agents.api.filters import ListFilter
from crm_agents.api.payloads import Choice, Decision, Rejection, parse
from crm_agents.api.schema import ErrorSerializer
from crm_agents.questions import resulting_change_sets
from crm_agents.services import ChoiceError, do_choose_record
from governance import review
from governance.models import CrmProvider
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus


class ReviewRefused(APIException):
    status_code = 400
    default_code = "refused"


class ReviewConflict(APIException):
    status_code = 409
    default_code = "conflict"


def _refusal(exc: review.ReviewError, change_set: ChangeSet, proposal=None) -> APIException:
    """409 if the set (or proposal) is no longer open to this decision, else 400."""
    change_set = ChangeSet.objects.get(pk=change_set.pk)
    pending = ChangeProposal.objects.filter(change_set=change_set, status=ProposalStatus.PENDING)
    if proposal is not None:
        pending = pending.filter(pk=proposal.pk)
    decidable = (
        not change_set.is_test and change_set.status != SetStatus.NEEDS_CHOICE and pending.exists()
    )
    return ReviewRefused(str(exc)) if decidable else ReviewConflict(str(exc))


CONFLICT = OpenApiResponse(
    ErrorSerializer,
    description="The object's state no longer allows this decision (already decided, "
    "nothing pending, a TEST change set, or no record chosen yet).",
)


@extend_schema_view(
    list=extend_schema(summary="List change sets"),
    retrieve=extend_schema(summary="A change set with its proposals"),
)
class ChangeSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    model = ChangeSet
    list_filters = with_workspace(
        status=ListFilter("status", SetStatus),
        run=ListFilter("run_id", "id", "Only this run's change sets."),
        provider=ListFilter("provider", CrmProvider),
    )

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
        responses={200: s.ChangeSetDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        change_set = self.get_object()
        require_configure(request, change_set.workspace_id, "Approving changes")
        try:
            review.do_approve_change_set(change_set, actor=request.user)
        except review.ReviewError as exc:
            raise _refusal(exc, change_set) from None
        return self._decided(request, change_set)

    @extend_schema(
        summary="Reject every pending proposal of a change set, with a reason",
        request=Rejection,
        responses={200: s.ChangeSetDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        change_set = self.get_object()
        require_configure(request, change_set.workspace_id, "Rejecting changes")
        body = parse(Rejection, request.data)
        try:
            review.do_reject_change_set(change_set, actor=request.user, reason=body.reason)
        except review.ReviewError as exc:
            raise _refusal(exc, change_set) from None
        return self._decided(request, change_set)

    @extend_schema(
        summary="Answer a change set's question of record, once for the call",
        description="A change set with status `needs_choice` asks which record the call "
        "meant. One answer settles every workflow of the call on the same CRM and object "
        "type: each continues on the chosen record (the choice is remembered for later "
        "calls with the same company and attendees). 400 when `record_id` is not one of "
        "the candidates; 409 when the set is not waiting for a choice.",
        request=Choice,
        responses={200: s.ChoiceResultSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def choose(self, request: Request, pk: str) -> Response:
        change_set = self.get_object()
        require_configure(request, change_set.workspace_id, "Choosing a record")
        body = parse(Choice, request.data)
        try:
            runs = do_choose_record(change_set, body.record_id, actor=request.user)
        except ChoiceError as exc:
            waiting = ChangeSet.objects.filter(pk=change_set.pk, status=SetStatus.NEEDS_CHOICE)
            raise (ReviewRefused if waiting.exists() else ReviewConflict)(str(exc)) from None
        question = self.base_queryset().get(pk=change_set.pk)
        result = {
            "question": question,
            "continued_runs": [run.pk for run in runs],
            "change_sets": resulting_change_sets(question),
        }
        context = self.get_serializer_context()
        return Response(s.ChoiceResultSerializer(result, context=context).data)


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
        request=Decision,
        responses={200: s.ChangeProposalSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str) -> Response:
        proposal = self.get_object()
        require_configure(request, proposal.workspace_id, "Deciding on a change")
        body = parse(Decision, request.data)
        try:
            review.do_decide_proposal(
                proposal, body.decision, actor=request.user, reason=body.reason, value=body.value
            )
        except review.ReviewError as exc:
            raise _refusal(exc, proposal.change_set, proposal) from None
        proposal = self.base_queryset().get(pk=proposal.pk)
        return Response(self.get_serializer(proposal).data)
