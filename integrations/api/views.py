"""Read-only API of connections: status and identity, never credentials."""

from rest_framework import serializers, viewsets

from integrations.models import Connection
from integrations.selectors import connections_visible_to


class ConnectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connection
        # An explicit list: a credential field can never slip in by being added to the model.
        fields = [
            "id",
            "workspace",
            "provider",
            "scope",
            "user",
            "auth_kind",
            "crm_account_id",
            "api_base_url",
            "crm_user_id",
            "crm_user_email",
            "status",
            "last_error",
            "expires_at",
            "last_used_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConnectionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ConnectionSerializer

    def get_queryset(self):
        return connections_visible_to(self.request.user).order_by("pk")
