"""A session's memory: the records it is about, and what the model is shown of the past.

The records (``ChatSession.state``) are the agent's own state, written by the tools, not by
the model: "it" is the last record a tool found alone, read or changed. They survive
compaction: when a session grows past ``CHAT_CONTEXT_MESSAGES`` messages, the older turns
are marked compacted (kept for the record and the page, left out of the model's context)
and a summary written by code from their replies stands in for them.
"""

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction

from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession

MAX_REMEMBERED = 20
SUMMARY_LINES = 30


@dataclass(frozen=True)
class Remembered:
    object_type: str
    id: str
    label: str

    @property
    def ref(self) -> str:
        return f"{self.object_type}:{self.id}"


def remembered(session: ChatSession) -> list[Remembered]:
    rows = (session.state or {}).get("records") or []
    return [
        Remembered(str(row["object_type"]), str(row["id"]), str(row.get("label") or row["id"]))
        for row in rows
        if isinstance(row, dict) and row.get("object_type") and row.get("id")
    ]


def current(session: ChatSession) -> Remembered | None:
    """The record "it" refers to, if any."""
    it = (session.state or {}).get("it")
    return next((record for record in remembered(session) if record.ref == it), None)


def remember(session: ChatSession, records: list[Remembered], *, it: Remembered | None) -> None:
    """Add ``records`` (most recent last) and make ``it`` the current record; an empty
    ``it`` leaves the current record as it was (a search that found several changes
    nothing about what "it" means)."""
    new = {record.ref for record in records}
    kept = [r for r in remembered(session) if r.ref not in new]
    kept = [*kept, *records][-MAX_REMEMBERED:]
    state = {"records": [asdict(record) for record in kept]}
    previous = (session.state or {}).get("it")
    state["it"] = it.ref if it is not None else previous
    session.state = state
    ChatSession.objects.filter(pk=session.pk).update(state=state)


def context_note(session: ChatSession) -> str:
    """What the model is told about the session's memory, after the system prompt."""
    lines = []
    if session.summary:
        lines += ["Earlier in this conversation (summarised):", session.summary, ""]
    records = remembered(session)
    it = current(session)
    if records:
        lines.append("Records this conversation is about (most recent last):")
        for record in records:
            marker = '  <- "it"' if it is not None and record.ref == it.ref else ""
            lines.append(f"- {record.object_type} {record.id}: {_one_line(record.label)}{marker}")
    else:
        lines.append("No record has been found in this conversation yet.")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def model_messages(session: ChatSession) -> list[dict]:
    """The session's live (not compacted) messages in the Chat Completions format."""
    result = []
    for message in session.messages.filter(compacted=False).order_by("pk"):
        if message.role == ChatRole.TOOL:
            result.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.tool_calls:
            result.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            result.append({"role": message.role, "content": message.content})
    return result


@transaction.atomic
def compact(session: ChatSession) -> int:
    """Compact the oldest whole turns once the live messages pass the limit; return how
    many messages were compacted. A turn (the rep's message up to the next one) is compacted
    whole, so no tool result is ever left without the call it answers."""
    limit = settings.CHAT_CONTEXT_MESSAGES
    live = list(session.messages.filter(compacted=False).order_by("pk").values_list("pk", "role"))
    if len(live) <= limit:
        return 0
    starts = [index for index, (_, role) in enumerate(live) if role == ChatRole.USER]
    # Keep the newest turns that fit in half the limit, so compaction does not run again
    # on the very next message.
    keep_from = next(
        (start for start in starts if len(live) - start <= limit // 2), starts[-1] if starts else 0
    )
    if keep_from == 0:
        return 0
    old_ids = [pk for pk, _ in live[:keep_from]]
    lines = [line for line in session.summary.splitlines() if line.strip()]
    for message in ChatMessage.objects.filter(pk__in=old_ids).order_by("pk"):
        if message.role == ChatRole.USER:
            lines.append(f"Rep: {_one_line(message.content)}")
        elif message.is_reply:
            lines.append(f"You: {_one_line(message.content)}")
    session.summary = "\n".join(lines[-SUMMARY_LINES:])
    ChatMessage.objects.filter(pk__in=old_ids).update(compacted=True)
    ChatSession.objects.filter(pk=session.pk).update(summary=session.summary)
    return len(old_ids)
