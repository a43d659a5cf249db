"""Scoped reads of chat: a session is visible to its own user only, and only while that
user still belongs to its workspace. Anyone else gets the same answer as for an id that
does not exist."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession
from governance.models import Workspace
from governance.selectors import workspaces_for_user


def chat_sessions_for(
    user: AbstractBaseUser, workspace: Workspace | None = None
) -> QuerySet[ChatSession]:
    sessions = ChatSession.objects.filter(user=user, workspace__in=workspaces_for_user(user))
    if workspace is not None:
        sessions = sessions.filter(workspace=workspace)
    return sessions.select_related("workspace")


def access_chat_session(user: AbstractBaseUser, session_id: object) -> ChatSession:
    """The user's own session; ChatSession.DoesNotExist for any other id."""
    try:
        pk = int(str(session_id))
    except ValueError:
        raise ChatSession.DoesNotExist(f"no chat session {session_id!r}") from None
    return chat_sessions_for(user).get(pk=pk)


def conversation(session: ChatSession) -> QuerySet[ChatMessage]:
    """What the rep sees: their messages and the agent's replies, oldest first (the tool
    calls and results in between are kept for the record, not shown as messages)."""
    return session.messages.filter(role__in=[ChatRole.USER, ChatRole.ASSISTANT]).filter(
        tool_calls=[]
    )
