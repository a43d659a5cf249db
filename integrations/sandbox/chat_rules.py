"""Deterministic chat: the ``rules`` mode of the sandbox model for requests that offer tools.

``answer_chat`` reads the LAST message. After a tool result (role ``tool``) it answers with
content, never another tool call, so a chat loop ends. Otherwise it reads the last user
message (case-insensitive, trailing punctuation ignored) with this grammar and calls one of
the tools the request offers (by function name):

    find (the) <name> (deal|contact|company)   find_records   {"query", "object_type"?}
    find <email> / find <domain>               find_records   {"query"}
    (list) my open deals                       find_records   {"mine": true, "open": true,
                                                               "object_type": "deal"}
    show (the) <field> (of|for) <record>       read_record    {"record", "fields": [<field>]}
    what is the <field> of <record>
    show its <field> / what is its <field>
    set (the) <field> of <record> to <value>   propose_update {"record", "field", "value"}
    set|change its <field> to <value>
    change (the) <field> to <value>

``<record>`` is the name as the user wrote it (a leading "the" and a trailing object type
dropped), or ``"it"`` for "it", "its", "that deal", "this contact" and the like: the chat
agent resolves "it" from its session state. Fields are snake-cased ("close date" ->
"close_date"); values and names keep the user's spelling. The product's chat agent defines
its tools with the names and argument names below. A needed tool the request does not offer,
or text outside the grammar, gets a content answer saying so. Malformed ``messages`` or
``tools`` raise ``ChatRequestError``.
"""

import json
import re

FIND_RECORDS = "find_records"
READ_RECORD = "read_record"
PROPOSE_UPDATE = "propose_update"

# Argument names of the tools above.
QUERY = "query"
OBJECT_TYPE = "object_type"
MINE = "mine"
OPEN = "open"
RECORD = "record"
FIELDS = "fields"
FIELD = "field"
VALUE = "value"

IT = "it"
HELP = "I can find records, show a field, set a field, or list your open deals."

_OBJECT_TYPES = "deal|contact|company"
_SHOW_VERB = r"(?:show(?:\s+me)?|what\s+is|what's)"
_SET_VERB = r"(?:set|change|update)"
_OPEN_DEALS = re.compile(r"(?:(?:list|show)\s+(?:me\s+)?)?my\s+open\s+deals", re.I)
_FIND = re.compile(rf"find\s+(?:the\s+)?(?P<query>.+?)(?:\s+(?P<type>{_OBJECT_TYPES}))?", re.I)
_SHOW_ITS = re.compile(rf"{_SHOW_VERB}\s+its\s+(?P<field>.+)", re.I)
_SHOW = re.compile(rf"{_SHOW_VERB}\s+(?:the\s+)?(?P<field>.+?)\s+(?:of|for)\s+(?P<record>.+)", re.I)
_SET_OF = re.compile(
    rf"{_SET_VERB}\s+(?:the\s+)?(?P<field>.+?)\s+(?:of|for|on)\s+(?P<record>.+?)"
    r"\s+to\s+(?P<value>.+)",
    re.I,
)
_SET_ITS = re.compile(rf"{_SET_VERB}\s+(?:its\s+|the\s+)?(?P<field>.+?)\s+to\s+(?P<value>.+)", re.I)
_PRONOUN = re.compile(rf"it|its|(?:that|this|the)\s+(?:{_OBJECT_TYPES}|one|record)", re.I)
_TRAILING_TYPE = re.compile(rf"\s+(?:{_OBJECT_TYPES})$", re.I)


class ChatRequestError(ValueError):
    """The request's messages or tools are not shaped as the Chat Completions API has them."""


def answer_chat(messages: list[dict], tools: list[dict]) -> dict:
    offered = _tool_names(tools)
    last = _checked_message(messages[-1] if isinstance(messages, list) and messages else None)
    if last["role"] == "tool":
        return {"content": _summary_of(last)}
    text = _last_user_text(messages)
    call = _tool_call_for(text)
    if call is None:
        return {"content": HELP}
    name, arguments = call
    if name not in offered:
        listed = ", ".join(sorted(offered)) or "none"
        return {
            "content": f"I would need the {name!r} tool for that, but this request does not "
            f"offer it (offered: {listed})."
        }
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _tool_call_for(text: str) -> tuple[str, dict] | None:
    said = text.strip().rstrip(".!?").strip()
    if _OPEN_DEALS.fullmatch(said):
        return FIND_RECORDS, {MINE: True, OPEN: True, OBJECT_TYPE: "deal"}
    if match := _FIND.fullmatch(said):
        arguments = {QUERY: match["query"]}
        if match["type"]:
            arguments[OBJECT_TYPE] = match["type"].lower()
        return FIND_RECORDS, arguments
    if match := _SHOW_ITS.fullmatch(said):
        return READ_RECORD, {RECORD: IT, FIELDS: [_snake(match["field"])]}
    if match := _SHOW.fullmatch(said):
        return READ_RECORD, {RECORD: _record(match["record"]), FIELDS: [_snake(match["field"])]}
    if match := _SET_OF.fullmatch(said) or _SET_ITS.fullmatch(said):
        record = _record(match["record"]) if "record" in match.groupdict() else IT
        return PROPOSE_UPDATE, {
            RECORD: record,
            FIELD: _snake(match["field"]),
            VALUE: match["value"],
        }
    return None


def _record(said: str) -> str:
    if _PRONOUN.fullmatch(said):
        return IT
    name = re.sub(r"^the\s+", "", said, flags=re.IGNORECASE)
    return _TRAILING_TYPE.sub("", name) or name


def _snake(field: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", field.lower()).strip("_")


def _summary_of(tool_message: dict) -> str:
    content = tool_message.get("content")
    try:
        result = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        result = None
    if isinstance(result, dict) and isinstance(result.get("summary"), str):
        return result["summary"]
    return "The tool answered; there is nothing more for me to do."


def _tool_names(tools: list[dict]) -> set[str]:
    if not isinstance(tools, list):
        raise ChatRequestError("'tools' must be an array")
    names = set()
    for index, tool in enumerate(tools):
        tool = tool if isinstance(tool, dict) else {}
        function = tool.get("function") if isinstance(tool.get("function"), dict) else {}
        name = function.get("name")
        if tool.get("type") != "function" or not isinstance(name, str) or not name:
            raise ChatRequestError(
                f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}"
            )
        names.add(name)
    return names


def _checked_message(message: object) -> dict:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise ChatRequestError("every message must be an object with a string 'role'")
    return message


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if _checked_message(message)["role"] == "user":
            return _text_of(message.get("content"))
    raise ChatRequestError("there is no user message to answer")


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return " ".join(part["text"] for part in content)
    raise ChatRequestError("a user message's 'content' must be a string or text parts")
