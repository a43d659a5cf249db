"""Chat: a rep's conversations with the agent, kept per session and private to their user.

A session remembers the records it is about (``state``), so "set its close date to Friday"
means the deal found two messages earlier, and keeps that memory when older messages are
compacted out of what the model sees (``summary`` then stands in for them).
"""

from django.conf import settings
from django.db import models

from governance.models import CrmProvider, TenantModel
from governance.review_models import CHAT_WORKFLOW_LABEL, chat_label


class ChatRole(models.TextChoices):
    USER = "user", "Rep"
    ASSISTANT = "assistant", "Agent"
    TOOL = "tool", "Tool result"


class ChatSession(TenantModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    title = models.CharField(max_length=200, blank=True)
    # {"records": [{"ref", "object_type", "id", "label"}, …], "it": "<ref>"}: the records
    # the conversation is about, most recent last, and the one "it" refers to.
    state = models.JSONField(default=dict, blank=True)
    # What the compacted (older) messages said, in the agent's own words, for the model.
    summary = models.TextField(blank=True)
    # Set while a turn runs, so a second message sent meanwhile (a double click, a second
    # tab) is refused instead of interleaving with the first.
    turn_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["workspace", "user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Chat {self.pk}"

    def audit_labels(self) -> dict[str, str]:
        """The labels of every audit event of this chat (record_event's keywords)."""
        return {"workflow_label": CHAT_WORKFLOW_LABEL, "run_label": chat_label(self.pk)}

    @property
    def script_key(self) -> str:
        """What the sandbox model's scripted mode knows this session's answers by."""
        return f"chat/{self.pk}"


class ChatMessage(TenantModel):
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=ChatRole.choices)
    content = models.TextField(blank=True)
    # An assistant message that calls tools: [{"id", "name", "arguments"}] (arguments as the
    # model sent them, a JSON string that may be malformed).
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    tool_name = models.CharField(max_length=100, blank=True)
    # On a reply: what the agent did this turn, written by code, not by the model —
    # {"found": […], "read": […], "proposed": […], "refused": […], "error": {…}}.
    activity = models.JSONField(default=dict, blank=True)
    # Left out of the model's context; the session summary stands in for it.
    compacted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["session", "compacted", "id"])]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:60]}"

    @property
    def is_reply(self) -> bool:
        """A message the rep sees as the agent's answer (not a tool call or its result)."""
        return self.role == ChatRole.ASSISTANT and not self.tool_calls
