"""The match a call's runs share: one per call, CRM and object type (crm_agents/call_matches.py)."""

from django.db import models

from governance.models import CrmProvider, ObjectTypeChoice, TenantModel


class CallMatch(TenantModel):
    """Which record a call is about on one CRM and object type, as the first run that
    needed it found it, with the candidates' values as read and when they were read.

    A row exists before its match does: ``matched_at`` is null until a run stores the
    result, and while one computes it the row is held by ``lease_owner`` until
    ``lease_expires_at`` (governance/owed.py), so a run that died mid-match holds nobody up
    for longer than a lease."""

    call = models.ForeignKey("crm_agents.Call", on_delete=models.CASCADE, related_name="matches")
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    object_type = models.CharField(max_length=16, choices=ObjectTypeChoice.choices)

    # What the candidates were read with: the union over the call's runs on this object.
    read_properties = models.JSONField(default=list, blank=True)
    candidates = models.JSONField(default=list, blank=True)  # [{id, name, score, reasons}]
    winner_id = models.CharField(max_length=64, blank=True)
    winner_name = models.CharField(max_length=500, blank=True)
    reason = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    ambiguous = models.BooleanField(default=False)
    company_ids = models.JSONField(default=list, blank=True)
    contact_ids = models.JSONField(default=list, blank=True)
    # {record id: {properties, modified_at, updated_at, owner_id, read_at, read}}
    records = models.JSONField(default=dict, blank=True)
    crm_requests = models.PositiveIntegerField(default=0)
    matched_by_run = models.ForeignKey(
        "crm_agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    matched_at = models.DateTimeField(null=True, blank=True)

    lease_owner = models.CharField(max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["call", "provider", "object_type"], name="one_match_per_call_crm_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_type} match of {self.call} on {self.get_provider_display()}"
