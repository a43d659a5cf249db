"""What a tool's ``record`` and ``field`` arguments mean, decided by code.

A record is "it" (the session's current record), a reference as find_records returns it
("deal:123"), the id or name of a record the conversation already holds, or else a name to
search for within the rep's access. A field is a canonical name (close_date), the CRM's own
name (closedate, CloseDate) or its label ("Close Date"). Anything that does not resolve to
exactly one is a ``ChatRefusal`` that says why, and asks when several could be meant.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from crm_agents.chat.memory import Remembered, current, remembered
from crm_agents.chat_models import ChatSession
from governance.guard import Guard
from governance.models import ObjectScope
from integrations.crm.types import (
    ObjectType,
    Operator,
    PropertySpec,
    Record,
    SearchFilter,
    SearchQuery,
)

PRONOUNS = re.compile(
    r"it|its|this|that|(?:the|this|that)\s+(?:deal|contact|company|record|one)", re.IGNORECASE
)
REFERENCE = re.compile(r"(deal|contact|company):(\S{1,64})")
SEARCH_LIMIT = 10


class ChatRefusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NameSearch:
    object_type: ObjectType
    query: SearchQuery


def label_fields(guard: Guard, object_type: ObjectType) -> list[str]:
    contact = object_type == ObjectType.CONTACT
    names = ["first_name", "last_name", "email"] if contact else ["name"]
    return [guard.profile.native_field(object_type, name) for name in names]


def label_of(guard: Guard, record: Record) -> str:
    values = [record.properties.get(name) for name in label_fields(guard, record.object_type)]
    if record.object_type == ObjectType.CONTACT:
        full = " ".join(v for v in values[:2] if v)
        return full or values[2] or f"contact {record.id}"
    return values[0] or f"{record.object_type} {record.id}"


def searchable_types(guard: Guard, asked: ObjectType | None) -> list[ObjectType]:
    if asked is not None:
        return [asked]  # out of scope: the guard refuses it, and the rep hears why
    return [t for t in ObjectType if guard.policy.object_scope(t) != ObjectScope.NONE]


def name_filters(guard: Guard, object_type: ObjectType, said: str) -> tuple[tuple, ...]:
    """Filter groups that find ``said`` as a name, email or domain of ``object_type``."""
    profile = guard.profile
    native = lambda field: profile.native_field(object_type, field)  # noqa: E731
    said = " ".join(said.split())
    if "@" in said and " " not in said:
        if object_type == ObjectType.CONTACT:
            return ((SearchFilter(native("email"), Operator.EQ, said.lower()),),)
        if object_type == ObjectType.COMPANY:
            domain = said.rsplit("@", 1)[1].lower()
            return ((SearchFilter(native("domain"), Operator.ENDS_WITH, domain),),)
        return ()
    if object_type == ObjectType.COMPANY and re.fullmatch(r"[\w-]+(\.[\w-]+)+", said):
        return ((SearchFilter(native("domain"), Operator.ENDS_WITH, said.lower()),),)
    if object_type == ObjectType.CONTACT:
        words = said.split()
        if len(words) == 1:
            return (
                (SearchFilter(native("first_name"), Operator.CONTAINS, said),),
                (SearchFilter(native("last_name"), Operator.CONTAINS, said),),
            )
        return (
            (
                SearchFilter(native("first_name"), Operator.CONTAINS, words[0]),
                SearchFilter(native("last_name"), Operator.CONTAINS, words[-1]),
            ),
        )
    return ((SearchFilter(native("name"), Operator.CONTAINS, said),),)


def search_by_name(
    guard: Guard,
    said: str,
    object_type: ObjectType | None,
    extra: tuple = (),
    details: Callable[[ObjectType], list[str]] | None = None,
) -> list[Record]:
    """Records named ``said`` (``extra`` filters added); ``details`` names more properties
    to read per object type than the ones that make a record's label."""
    found: list[Record] = []
    if object_type is None and "@" in said:
        object_type = ObjectType.CONTACT  # an email address names a person
    for kind in searchable_types(guard, object_type):
        groups = name_filters(guard, kind, said)
        if not groups:
            continue
        groups = tuple((*group, *extra) for group in groups)
        found.extend(search(guard, kind, groups, details))
    return found[:SEARCH_LIMIT]


def search(
    guard: Guard,
    object_type: ObjectType,
    groups: tuple,
    details: Callable[[ObjectType], list[str]] | None = None,
) -> list[Record]:
    """One page of records matching ``groups``, read with their label fields and
    ``details``."""
    properties = [*label_fields(guard, object_type), *(details(object_type) if details else [])]
    query = SearchQuery(
        object_type, filter_groups=groups, properties=tuple(properties), limit=SEARCH_LIMIT
    )
    return list(guard.search(query).records)


def resolve_record(
    session: ChatSession, guard: Guard, said: str, object_type: ObjectType | None = None
) -> Remembered:
    said = " ".join((said or "").split())
    if not said or PRONOUNS.fullmatch(said):
        it = current(session)
        if it is None:
            raise ChatRefusal(
                f'I do not know which record "{said or "it"}" is yet: find the record first.'
            )
        return it
    known = remembered(session)
    if match := REFERENCE.fullmatch(said):
        kind, record_id = match.groups()
        same = next((r for r in known if r.object_type == kind and r.id == record_id), None)
        return same or Remembered(kind, record_id, f"{kind} {record_id}")
    by_id = [r for r in known if r.id == said]
    if len(by_id) == 1:
        return by_id[0]
    folded = said.casefold()
    by_name = [r for r in known if folded in r.label.casefold()]
    if object_type is not None:
        by_name = [r for r in by_name if r.object_type == object_type]
    if len(by_name) == 1:
        return by_name[0]
    found = search_by_name(guard, said, object_type)
    if not found:
        return _none_named(said, object_type)
    if len(found) > 1:
        listed = "; ".join(f"{r.object_type}:{r.id} {label_of(guard, r)}" for r in found)
        raise ChatRefusal(f"Several records match {said!r}: {listed}. Which one do you mean?")
    record = found[0]
    return Remembered(str(record.object_type), record.id, label_of(guard, record))


def _none_named(said: str, object_type: ObjectType | None) -> Remembered:
    what = f"{object_type}" if object_type else "record"
    raise ChatRefusal(f"I found no {what} matching {said!r} within your access.")


def resolve_field(
    guard: Guard, object_type: ObjectType, said: str, specs: dict[str, PropertySpec]
) -> str:
    """The CRM's own name of the field the model named, among the properties the policy
    lets CRM Steward read (``specs``: the guard's describe, already filtered)."""
    profile = guard.profile
    wanted = (said or "").strip()
    if not wanted:
        raise ChatRefusal("Name the field to use.")
    folded = _fold(wanted)
    for candidate in (profile.native_field(object_type, wanted), wanted):
        if candidate in specs:
            return candidate
    for name, spec in specs.items():
        canonical = profile.canonical_field(object_type, name)
        if folded in (_fold(name), _fold(spec.label), _fold(canonical)):
            return name
    native = profile.native_field(object_type, wanted)
    if not guard.policy.may_read(object_type, native):
        raise ChatRefusal(
            f"{wanted} is not a {object_type} field CRM Steward may read under your "
            "workspace's policy."
        )
    raise ChatRefusal(f"The CRM has no {object_type} field called {wanted!r}.")


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.casefold())
