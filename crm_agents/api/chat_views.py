"""Chat over the API: start a session, post a message (one agent turn), read the
conversation.

A session is private to the person who started it: anyone else gets the same 404 as for an
id that does not exist (crm_agents/chat/selectors.py). Chat reads and proposes with that
person's own CRM permissions, so a workspace API key, which is nobody, cannot chat.
"""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm_agents.api import chat_serializers as s
from crm_agents.api.access import api_key_of, target_workspace
from crm_agents.api.base import ApiViewSet
from crm_agents.api.filters import ListFilter, parse_id
from crm_agents.api.payloads import parse
from crm_agents.api.schema import ErrorSerializer
from crm_agents.chat import services
from crm_agents.chat.selectors import access_chat_session, chat_sessions_for, conversation
from crm_agents.chat_models import ChatSession
from governance.models import CrmProvider


class IsAPersonForChat(BasePermission):
    message = (
        "Chat acts as a person, with their own CRM permissions, so a workspace API key "
        "cannot chat: use a personal API token (`Authorization: Token <token>`) or sign in."
    )

    def has_permission(self, request: Request, view) -> bool:
        return api_key_of(request) is None


class ChatRefused(APIException):
    status_code = 400
    default_code = "invalid"


class TurnInProgress(APIException):
    status_code = 409
    default_code = "conflict"


@extend_schema_view(
    list=extend_schema(summary="Your chat sessions, most recent first"),
    retrieve=extend_schema(summary="One of your chat sessions"),
)
class ChatSessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = s.ChatSessionSerializer
    permission_classes = [IsAuthenticated, IsAPersonForChat]
    list_filters = {
        "workspace": ListFilter("workspace_id", "id", "Only this workspace."),
        "provider": ListFilter("provider", CrmProvider, "Only this CRM."),
    }

    def get_queryset(self) -> QuerySet[ChatSession]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, with no user
            return ChatSession.objects.none()
        return chat_sessions_for(self.request.user)

    def get_object(self) -> ChatSession:
        pk = parse_id(self.kwargs["pk"])
        try:
            if pk is None:
                raise ChatSession.DoesNotExist
            return access_chat_session(self.request.user, pk)
        except ChatSession.DoesNotExist:
            raise NotFound() from None

    @extend_schema(
        summary="Start a chat session",
        description="`workspace` may be left out by a person who belongs to one workspace "
        "only. The session is yours alone; nobody else sees it over the API.",
        request=s.ChatSessionStart,
        responses={201: s.ChatSessionSerializer},
    )
    def create(self, request: Request) -> Response:
        body = parse(s.ChatSessionStart, request.data)
        workspace = target_workspace(request, body.workspace)
        try:
            session = services.do_start_chat_session(
                workspace, request.user, body.provider.value, title=body.title
            )
        except services.ChatInputError as exc:
            raise ChatRefused(str(exc)) from None
        data = self.get_serializer(session).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        summary="The conversation: your messages and the agent's replies, oldest first",
        responses={200: s.ChatMessageSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Ask the agent something (runs one turn)",
        description="Answers once the turn is over. The reply's `content` says in words "
        "what the agent found, proposed or changed, and refused; its `activity` holds the "
        "same facts for code, with links to the records and to the proposed change sets. A "
        "turn that could not run (no CRM connection of yours, the model unavailable) still "
        "gets a 201 with a reply saying why, and `activity.error` naming the kind of "
        "problem.",
        request=s.ChatMessagePost,
        responses={
            201: s.ChatExchangeSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="The agent is still answering a message here."
            ),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def messages(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(conversation(session))
            data = s.ChatMessageSerializer(page, many=True).data
            return self.get_paginated_response(data)
        body = parse(s.ChatMessagePost, request.data)
        try:
            reply = services.do_post_chat_message(session, body.text, user=request.user)
        except services.ChatInputError as exc:
            busy = ChatSession.objects.filter(pk=session.pk, turn_started_at__isnull=False)
            raise (TurnInProgress if busy.exists() else ChatRefused)(str(exc)) from None
        exchange = {"message": reply.in_reply_to, "reply": reply}
        return Response(s.ChatExchangeSerializer(exchange).data, status=status.HTTP_201_CREATED)
