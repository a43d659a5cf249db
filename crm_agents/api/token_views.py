"""A person's own API tokens: create one (shown once), list them, revoke one.

Workspace API keys are issued by RevOps in the admin or with ``manage.py create_api_key``;
an API key cannot mint tokens.
"""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm_agents.api.access import api_key_of
from crm_agents.api.base import ApiViewSet
from crm_agents.api.payloads import NewToken, parse
from crm_agents.api.serializers import ApiTokenSerializer, IssuedTokenSerializer
from governance.api_auth import ApiToken
from governance.api_keys import do_create_api_token, do_revoke_api_token


class IsAPerson(BasePermission):
    message = "API keys act for a workspace, not a person: they cannot hold tokens."

    def has_permission(self, request: Request, view) -> bool:
        return api_key_of(request) is None


@extend_schema_view(
    list=extend_schema(summary="Your API tokens (never their secrets)"),
    create=extend_schema(
        summary="Create an API token",
        description="The token is in this response only: store it now. Send it as "
        "`Authorization: Token <token>`.",
        request=NewToken,
        responses={201: IssuedTokenSerializer},
    ),
    destroy=extend_schema(summary="Revoke one of your API tokens"),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    serializer_class = ApiTokenSerializer
    permission_classes = [IsAuthenticated, IsAPerson]

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, with no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def create(self, request: Request) -> Response:
        body = parse(NewToken, request.data)
        try:
            issued = do_create_api_token(request.user, body.name, acting_user=request.user)
        except ValueError as exc:  # the service's own checks, keyed like ours
            raise ValidationError({"name": [str(exc)]}) from None
        data = {**ApiTokenSerializer(issued.credential).data, "token": issued.secret}
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        do_revoke_api_token(instance, acting_user=self.request.user)
