"""What the chat API shows, and the bodies it accepts (validated by pydantic, like
crm_agents/api/payloads.py, so a typo'd field name is a 400 rather than silently ignored).

A message's ``activity`` is stored and shown as written by the agent's code
(crm_agents/chat/activity.py); its serializer here only documents that shape in the schema.
"""

from drf_spectacular.utils import extend_schema_field
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rest_framework import serializers

from crm_agents.api.payloads import Id
from crm_agents.api.serializers import absolute_url
from crm_agents.calls import NOT_BLANK
from crm_agents.chat.activity import ErrorKind
from crm_agents.chat.services import MAX_MESSAGE_CHARS
from crm_agents.chat_models import ChatMessage, ChatSession
from governance.models import CrmProvider


class ChatSessionSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    messages_url = serializers.SerializerMethodField()

    class Meta:
        model = ChatSession
        fields = [
            "id",
            "url",
            "messages_url",
            "workspace",
            "provider",
            "title",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_url(self, session: ChatSession) -> str:
        return absolute_url(self.context.get("request"), "chat-session-detail", session.pk)

    def get_messages_url(self, session: ChatSession) -> str:
        return absolute_url(self.context.get("request"), "chat-session-messages", session.pk)


class ChatRecordSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()
    url = serializers.CharField(help_text="The record's page in the CRM; may be empty.")


class ChatReadRecordSerializer(ChatRecordSerializer):
    values = serializers.DictField(child=serializers.CharField(), help_text="By field label.")


class ChatProposedChangeSerializer(serializers.Serializer):
    change_set = serializers.IntegerField()
    proposal = serializers.IntegerField()
    object_type = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()
    field = serializers.CharField()
    field_label = serializers.CharField()
    value = serializers.JSONField()
    status = serializers.CharField(help_text="The proposal's status.")
    status_label = serializers.CharField()
    status_reason = serializers.CharField()
    url = serializers.CharField(help_text="The change set in the review queue.")


class ChatRefusalSerializer(serializers.Serializer):
    tool = serializers.CharField()
    reason = serializers.CharField()


class ChatErrorSerializer(serializers.Serializer):
    # Every kind activity.py declares, so the schema follows when a kind is added.
    kind = serializers.ChoiceField(choices=ErrorKind.choices)
    message = serializers.CharField()


class ChatActivitySerializer(serializers.Serializer):
    """What the agent did in one turn, written by code, not by the model. Empty ({}) on
    the rep's own messages."""

    found = ChatRecordSerializer(many=True, required=False)
    read = ChatReadRecordSerializer(many=True, required=False)
    proposed = ChatProposedChangeSerializer(many=True, required=False)
    refused = ChatRefusalSerializer(many=True, required=False)
    error = ChatErrorSerializer(
        allow_null=True, required=False, help_text="Why the turn could not run, if so."
    )
    steps = serializers.IntegerField(required=False, help_text="Model calls this turn.")


@extend_schema_field(ChatActivitySerializer)
class ActivityField(serializers.JSONField):
    """The stored activity as is; the schema shows its shape."""


class ChatMessageSerializer(serializers.ModelSerializer):
    activity = ActivityField(read_only=True)

    class Meta:
        model = ChatMessage
        fields = ["id", "role", "content", "activity", "created_at"]
        read_only_fields = fields


class ChatExchangeSerializer(serializers.Serializer):
    """The answer to a posted message: it as stored, and the agent's reply."""

    message = ChatMessageSerializer()
    reply = ChatMessageSerializer()


# --- request bodies ---------------------------------------------------------------------------
class ChatSessionStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: CrmProvider = Field(description="The CRM this chat reads and proposes changes to.")
    workspace: Id | None = Field(
        default=None,
        description="The workspace's id. Optional for a person who belongs to a single workspace.",
    )
    title: str = Field(
        default="",
        max_length=200,
        description="Optional; the first message names the chat otherwise.",
    )


class ChatMessagePost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        description="What the rep asks, in their words.",
        # Spaces around it are trimmed, so it needs one character that is not a space.
        json_schema_extra={"minLength": 1, "maxLength": MAX_MESSAGE_CHARS, "pattern": NOT_BLANK},
    )

    @field_validator("text")
    @classmethod
    def _sayable(cls, text: str) -> str:
        # The same rules and words as the service (do_post_chat_message), but keyed by the
        # field, so an API client sees which value was wrong.
        text = text.strip()
        if not text:
            raise ValueError("Type a message first.")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(
                f"That message is {len(text)} characters; chat takes at most {MAX_MESSAGE_CHARS}."
            )
        return text
