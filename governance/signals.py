"""Policy changes belong in the audit trail, next to what they made the agent do or not do.

simple-history keeps the full versions (shown in the admin); each new version also becomes
an audit event naming who changed which fields.
"""

from django.dispatch import receiver
from simple_history.signals import post_create_historical_record

from audit.services import record_event
from governance.models import Policy


@receiver(post_create_historical_record, sender=Policy.history.model)
def audit_policy_change(sender, instance: Policy, history_instance, **kwargs) -> None:
    previous = history_instance.prev_record
    if previous is None:
        changed = ["created"]
    else:
        changed = sorted(change.field for change in history_instance.diff_against(previous).changes)
    user = history_instance.history_user
    record_event(
        instance.workspace,
        action="policy.changed",
        outcome="ok",
        actor_kind="user" if user else "system",
        actor_user=user,
        crm=instance.provider,
        reason=f"policy {'created' if previous is None else 'changed'}: {', '.join(changed)}",
        context={"history_id": history_instance.history_id, "fields": changed},
    )
