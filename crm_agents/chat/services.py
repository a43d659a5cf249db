"""State changes of chat: start a session, post a message (which runs one agent turn).

Views and the API call these; they never save chat rows themselves. Every turn's CRM
access happens inside the turn, through the guard (crm_agents/chat/tools.py).
"""

import logging
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import ActorKind
from audit.services import record_event
from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession
from governance.models import CrmProvider, Workspace
from governance.selectors import workspaces_for_user

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
TURN_TIMEOUT = timedelta(minutes=10)
TITLE_CHARS = 80


class ChatInputError(ValueError):
    """A message or session request that cannot be taken; the text is for the rep."""


@transaction.atomic
def do_start_chat_session(
    workspace: Workspace, user: AbstractBaseUser, provider: str, *, title: str = ""
) -> ChatSession:
    if provider not in CrmProvider.values:
        names = ", ".join(CrmProvider.values)
        raise ChatInputError(f"{provider!r} is not a CRM CRM Steward chats with ({names}).")
    if not workspaces_for_user(user).filter(pk=workspace.pk).exists():
        raise ChatInputError(f"You are not a member of {workspace}.")
    session = ChatSession.objects.create(
        workspace=workspace, user=user, provider=provider, title=title.strip()[:200]
    )
    record_event(
        workspace,
        action="chat.session.start",
        outcome="ok",
        actor_kind=ActorKind.USER,
        actor_user=user,
        crm=provider,
        **session.audit_labels(),
        context={"session": session.pk},
    )
    return session


def do_post_chat_message(session: ChatSession, text: str, *, user: AbstractBaseUser) -> ChatMessage:
    """Store the rep's message, run one agent turn and return the agent's reply.

    The reply always exists, even when the turn could not run (no connection, no model,
    the model failing): it then says why in words the rep can act on, and its
    ``activity["error"]`` says which kind of problem it was. ``reply.in_reply_to`` is the
    rep's message it answers.
    """
    from crm_agents.chat.loop import failed_turn, run_turn
    from crm_agents.chat.memory import compact

    if session.user_id != user.pk:
        raise ChatInputError("This chat belongs to someone else.")
    text = (text or "").strip()
    if not text:
        raise ChatInputError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatInputError(
            f"That message is {len(text)} characters; chat takes at most {MAX_MESSAGE_CHARS}."
        )
    if not _start_turn(session):
        raise ChatInputError(
            "I am still answering your previous message in this chat; wait for my reply."
        )
    try:
        asked = ChatMessage.objects.create(
            workspace=session.workspace, session=session, role=ChatRole.USER, content=text
        )
        if not session.title:
            session.title = text[:TITLE_CHARS]
            session.save(update_fields=["title", "updated_at"])
        try:
            reply = run_turn(session, asked)
        except Exception:
            logger.exception("chat turn failed (session %s, message %s)", session.pk, asked.pk)
            reply = failed_turn(session, asked)
        reply.in_reply_to = asked  # not stored: messages are ordered, this saves a lookup
        compact(session)
    finally:
        ChatSession.objects.filter(pk=session.pk).update(turn_started_at=None)
    return reply


def _start_turn(session: ChatSession) -> bool:
    """Take the session's turn with one conditional update; a turn older than TURN_TIMEOUT
    belongs to a process that died mid-turn and is taken over."""
    now = timezone.now()
    free = Q(turn_started_at__isnull=True) | Q(turn_started_at__lt=now - TURN_TIMEOUT)
    return bool(ChatSession.objects.filter(free, pk=session.pk).update(turn_started_at=now))
