"""The guard a change set is written (or rolled back) through.

A workflow's change goes through the workspace connection. A change a rep asked for in chat
is written through the connection chat uses for that rep (their own, unless a workspace
admin forces the workspace's), so the rep's CRM permissions hold at write time too. A
rollback is RevOps undoing a change, through the workspace connection.
"""

from audit.models import ActorKind
from governance.guard import Guard
from governance.models import Policy
from governance.review_models import ChangeSet
from integrations.crm.types import ObjectType


class NoGuard(Exception):
    """Why nothing can be written for this change set; ``message`` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def change_set_guard(
    change_set: ChangeSet,
    *,
    actor,
    actor_kind: str = ActorKind.AGENT,
    as_requester: bool = False,
) -> Guard:
    from integrations.connections import ConnectionProblem, Purpose, resolve_connection

    policy = (
        Policy.objects.prefetch_related("read_properties", "write_properties")
        .filter(workspace=change_set.workspace, provider=change_set.provider)
        .first()
    )
    if policy is None:
        raise NoGuard("no policy for this CRM: nothing may be written")
    try:
        if as_requester and change_set.requested_by_id:
            resolved = resolve_connection(
                change_set.workspace, change_set.provider, Purpose.CHAT, change_set.requested_by
            )
        else:
            resolved = resolve_connection(
                change_set.workspace, change_set.provider, Purpose.WORKFLOW
            )
    except ConnectionProblem as exc:
        raise NoGuard(exc.message) from exc
    guard = Guard.for_resolved(
        resolved,
        policy,
        actor_user=actor,
        actor_kind=actor_kind,
        labels=change_set.audit_labels(),
    )
    if change_set.object_type == ObjectType.DEAL:
        from crm_agents.crm_meta import deal_stages

        deal_stages(guard, resolved.connection)  # cached: the closed-deal check asks nothing
    return guard
