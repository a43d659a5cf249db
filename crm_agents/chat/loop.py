"""One chat turn: the agent loop over the model's tool calls.

The model sees the system prompt, the session's memory and the live messages, and may call
the agent's three tools (crm_agents/chat/tools.py) through the ``openai`` client. Every tool
call and result is stored, so the turn can be explained later. The loop ends when the model
answers in words, or after ``CHAT_MAX_STEPS`` model calls (a model that never stops is cut
off, and the rep is told). Whatever happens, the turn ends with a reply whose ``activity``
says, in facts written by code, what was found, read, proposed and refused.
"""

import json
from datetime import date

from django.conf import settings
from django.utils import timezone

from audit.models import ActorKind
from crm_agents import extraction
from crm_agents.chat.activity import Activity, ErrorKind
from crm_agents.chat.memory import context_note, model_messages
from crm_agents.chat.tools import TOOL_SPECS, ChatTools
from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession
from crm_agents.prompts import template
from crm_agents.records import hand_to_apply
from governance.guard import Guard
from governance.models import Policy
from governance.review_models import ChangeProposal
from integrations.connections import ConnectionProblem, Purpose, provider_label, resolve_connection

PROMPT_VERSION = "chat-v1"
MAX_TOOL_CALLS_PER_STEP = 5
# Calls past this many in one answer are not even stored: a flood is one refusal.
MAX_TOOL_CALLS_KEPT = 10
MAX_REPLY_CHARS = 8000


def run_turn(session: ChatSession, asked: ChatMessage) -> ChatMessage:
    activity = Activity()
    crm = provider_label(session.provider)
    try:
        resolved = resolve_connection(
            session.workspace, session.provider, Purpose.CHAT, session.user
        )
    except ConnectionProblem as exc:
        activity.fail(ErrorKind.CONNECTION, exc.message)
        return _reply(session, exc.message, activity)
    policy = (
        Policy.objects.prefetch_related("read_properties", "write_properties")
        .filter(workspace=session.workspace, provider=session.provider)
        .first()
    )
    if policy is None:
        message = (
            f"{session.workspace} has no {crm} policy yet, so CRM Steward may not read or "
            "change anything there: ask RevOps to set one up."
        )
        activity.fail(ErrorKind.POLICY, message)
        return _reply(session, message, activity)
    try:
        client = extraction.model_client()
    except extraction.ModelNotConfigured:
        message = (
            "No AI model is configured for CRM Steward, so chat cannot answer: ask your "
            "workspace admin to set MODEL_API_KEY (and MODEL_BASE_URL)."
        )
        activity.fail(ErrorKind.MODEL, message)
        return _reply(session, message, activity)
    guard = Guard.for_resolved(
        resolved,
        policy,
        actor_kind=ActorKind.USER,
        actor_user=session.user,
        labels=session.audit_labels(),
    )
    tools = ChatTools(session, guard, activity, asked)
    text = _converse(session, client, tools, activity, crm)
    _hand_over(tools)
    return _reply(session, text, activity)


def _converse(session, client, tools: ChatTools, activity: Activity, crm: str) -> str:
    system = {"role": "system", "content": _system_prompt(session, crm)}
    for _ in range(settings.CHAT_MAX_STEPS):
        activity.steps += 1
        messages = [
            system,
            # The memory is re-read each step: the tools change what "it" is.
            {"role": "system", "content": context_note(session)},
            *model_messages(session),
        ]
        try:
            completion = extraction.complete(
                client,
                settings.MODEL_NAME,
                messages,
                script_key=session.script_key,
                tools=TOOL_SPECS,
            )
        except extraction.ModelError as exc:
            activity.fail(ErrorKind.MODEL, f"The AI model could not answer: {exc}")
            return (
                "The AI model could not answer just now, so I stopped; try again in a "
                f"moment. ({exc})"
            )
        message = completion.choices[0].message if completion.choices else None
        calls = list(getattr(message, "tool_calls", None) or [])
        if not calls:
            return ((message.content if message else "") or "").strip()
        _run_tools(session, message, calls, tools)
    limit = settings.CHAT_MAX_STEPS
    reason = (
        f"I stopped after {limit} steps without finishing this request, so nothing more "
        "was done; what was done is listed below."
    )
    activity.fail(ErrorKind.STEP_LIMIT, reason)
    return reason


def _run_tools(session: ChatSession, message, calls: list, tools: ChatTools) -> None:
    asked = [
        {
            "id": str(getattr(call, "id", "") or f"call_{index}")[:100],
            "name": str(getattr(call.function, "name", "") or "")[:100],
            "arguments": str(getattr(call.function, "arguments", "") or "")[:20_000],
        }
        for index, call in enumerate(calls[:MAX_TOOL_CALLS_KEPT])
    ]
    if len(calls) > MAX_TOOL_CALLS_KEPT:
        tools.refuse(
            "(many)",
            f"The model asked for {len(calls)} tool calls at once; the "
            f"{len(calls) - MAX_TOOL_CALLS_KEPT} past the first {MAX_TOOL_CALLS_KEPT} were "
            "ignored.",
        )
    ChatMessage.objects.create(
        workspace=session.workspace,
        session=session,
        role=ChatRole.ASSISTANT,
        content=(message.content or "")[:MAX_REPLY_CHARS],
        tool_calls=asked,
    )
    for index, call in enumerate(asked):
        if index < MAX_TOOL_CALLS_PER_STEP:
            result = tools.call(call["name"], call["arguments"])
        else:
            result = tools.refuse(
                call["name"], f"At most {MAX_TOOL_CALLS_PER_STEP} tool calls are run per step."
            )
        ChatMessage.objects.create(
            workspace=session.workspace,
            session=session,
            role=ChatRole.TOOL,
            content=json.dumps(result, default=str),
            tool_call_id=call["id"],
            tool_name=call["name"],
        )


def _system_prompt(session: ChatSession, crm: str) -> str:
    user = session.user
    rep = user.get_full_name() or user.get_username()
    today: date = timezone.localdate()
    return (
        template("chat_v1.system")
        .replace("$crm", crm)
        .replace("$today", today.isoformat())
        .replace("$rep", f"{rep} <{user.email}>" if user.email else rep)
    )


def _hand_over(tools: ChatTools) -> None:
    """Approved changes go to the apply step now; the reply then says where each stands."""
    for change_set in tools.proposer.sets.values():
        hand_to_apply(change_set)
    ids = [item["proposal"] for item in tools.activity.proposed]
    proposals = ChangeProposal.objects.in_bulk(ids)
    for item in tools.activity.proposed:
        proposal = proposals.get(item["proposal"])
        if proposal is not None:
            item["status"] = proposal.status
            item["status_label"] = proposal.get_status_display()
            item["status_reason"] = proposal.status_reason


def failed_turn(session: ChatSession, asked: ChatMessage) -> ChatMessage:
    """The reply to a turn CRM Steward itself failed (a bug, the database going away): the
    rep is told, and the message they sent stays in the session."""
    activity = Activity()
    message = (
        "Something went wrong on CRM Steward's side and I stopped; it has been logged "
        f"(chat message {asked.pk}). Proposals made before the failure are in the review "
        "queue; nothing else was changed."
    )
    activity.fail(ErrorKind.INTERNAL, message)
    return _reply(session, message, activity)


def _reply(session: ChatSession, text: str, activity: Activity) -> ChatMessage:
    reply = ChatMessage.objects.create(
        workspace=session.workspace,
        session=session,
        role=ChatRole.ASSISTANT,
        content=(text or _plain(activity))[:MAX_REPLY_CHARS],
        activity=activity.as_json(),
    )
    ChatSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
    return reply


def _plain(activity: Activity) -> str:
    """Words for a reply when the model gave none."""
    if activity.proposed:
        return f"I proposed {len(activity.proposed)} change(s); see below."
    if activity.found:
        return f"I found {len(activity.found)} record(s); see below."
    if activity.refused:
        return "I could not do that; the reasons are below."
    return "Done."
