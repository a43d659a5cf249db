"""Audit events for changes that happen below the audit layer or through simple-history.

Policy changes belong in the audit trail, next to what they made the agent do or not do:
simple-history keeps the full versions (shown in the admin); each new version also becomes
an audit event naming who changed which fields, from what to what. Both are written inside
the save, so they commit with the change or not at all; a save that changes nothing is no
event.

Connections (integrations, which cannot import audit) send ``connection_event`` inside the
transaction that changed them; it becomes an audit event here.
"""

from django.dispatch import receiver
from simple_history.signals import post_create_historical_record

from audit.services import record_event
from governance.models import Policy
from integrations.signals import connection_event


@receiver(post_create_historical_record, sender=Policy.history.model)
def audit_policy_change(sender, instance: Policy, history_instance, **kwargs) -> None:
    previous = history_instance.prev_record
    before: dict[str, object] | None = None
    after: dict[str, object] | None = None
    if history_instance.history_type == "-":
        changed, verb = ["deleted"], "deleted"
    elif previous is None:
        changed, verb = ["created"], "created"
    else:
        changes = history_instance.diff_against(previous).changes
        if not changes:
            return  # saved as it was
        changed, verb = sorted(change.field for change in changes), "changed"
        before = {change.field: change.old for change in changes}
        after = {change.field: change.new for change in changes}
    user = history_instance.history_user
    record_event(
        instance.workspace,
        action="policy.changed",
        outcome="ok",
        actor_kind="user" if user else "system",
        actor_user=user,
        crm=instance.provider,
        before=before,
        after=after,
        reason=f"policy {verb}: {', '.join(changed)}",
        context={"history_id": history_instance.history_id, "fields": changed},
    )


@receiver(connection_event)
def audit_connection_event(
    sender,
    *,
    workspace,
    provider: str,
    scope: str,
    connection,
    action: str,
    outcome: str,
    acting_user,
    before: dict | None,
    after: dict | None,
    reason: str,
    **kwargs,
) -> None:
    record_event(
        workspace,
        action=action,
        outcome=outcome,
        actor_kind="user" if acting_user else "system",
        actor_user=acting_user,
        crm=provider,
        connection=connection,
        scope=scope,
        before=before,
        after=after,
        reason=reason,
    )
