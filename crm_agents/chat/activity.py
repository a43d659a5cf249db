"""What the agent did in one chat turn, written by code (never by the model) and stored on
the reply (``ChatMessage.activity``), so the rep, the API and the page all see the same
facts whatever the model's text says.

The JSON shape (every list may be empty, ``error`` may be null)::

    {
      "found":    [{"object_type", "id", "label", "url"}],
      "read":     [{"object_type", "id", "label", "url", "values": {"<field label>": "…"}}],
      "proposed": [{"change_set", "proposal", "object_type", "id", "label", "field",
                    "field_label", "value", "status", "status_label", "status_reason",
                    "url"}],
      "refused":  [{"tool", "reason"}],
      "error":    {"kind": "connection" | "policy" | "model" | "step_limit" | "internal",
                 "message"}
                | null,
      "steps":    <model calls this turn>
    }

``url`` of a record is its page in the CRM (may be ""), ``url`` of a proposal is its change
set in the review queue.
"""

from dataclasses import asdict, dataclass, field

from django.db import models


class ErrorKind(models.TextChoices):
    CONNECTION = "connection", "No usable CRM connection"
    POLICY = "policy", "No policy for this CRM"
    MODEL = "model", "The AI model could not answer"
    STEP_LIMIT = "step_limit", "Stopped at the step limit"
    INTERNAL = "internal", "CRM Steward failed"


@dataclass
class Activity:
    found: list[dict] = field(default_factory=list)
    read: list[dict] = field(default_factory=list)
    proposed: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    error: dict | None = None
    steps: int = 0

    def refuse(self, tool: str, reason: str) -> None:
        self.refused.append({"tool": tool, "reason": reason})

    def fail(self, kind: str, message: str) -> None:
        self.error = {"kind": kind, "message": message}

    def as_json(self) -> dict:
        return asdict(self)
