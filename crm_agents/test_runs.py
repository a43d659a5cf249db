"""Workflow tests: run a workflow on a past call, or on a transcript pasted in the admin,
and show what it would write. A TEST run reads the real CRM and writes nothing: its
proposals are recorded as dry runs and never applied (crm_agents/records.py)."""

import logging
import re
import uuid
from datetime import datetime

from django import forms
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError as PydanticError

from audit.services import record_event
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, Call, CallSource, Workflow
from crm_agents.services import do_create_test_run, do_submit_call

logger = logging.getLogger(__name__)

_ATTENDEE = re.compile(
    r"(?P<name>[^<]*?)\s*<(?P<email>[^>]*)>\s*(?P<internal>\[internal\])?", re.IGNORECASE
)
_TURN = re.compile(
    r"(?:\[(?P<time>(?:\d{1,2}:)?\d{1,3}:\d{2})\]\s*)?(?P<speaker>[^:\[\]]{1,200}?)\s*:\s*(?P<text>.*)"
)


def parse_attendees(text: str) -> list[dict]:
    """Lines of ``Name <email> [internal]``; raises ValueError naming the line."""
    attendees = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _ATTENDEE.fullmatch(line)
        if match is None:
            raise ValueError(f'line {number}: write "Name <email>" or "Name <email> [internal]"')
        attendees.append(
            {
                "name": match["name"].strip(),
                "email": match["email"].strip(),
                "internal": bool(match["internal"]),
            }
        )
    return attendees


def parse_transcript(text: str) -> list[dict]:
    """Lines of ``Speaker: text`` or ``[mm:ss] Speaker: text``; a line without a speaker
    continues the turn before it. Raises ValueError naming the line."""
    turns: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _TURN.fullmatch(line)
        if match is None:
            if not turns:
                raise ValueError(f'line {number}: start with "Speaker: what they said"')
            turns[-1]["text"] = f"{turns[-1]['text']} {line}"
            continue
        start = _seconds(match["time"]) if match["time"] else (turns[-1]["start"] if turns else 0)
        turns.append({"speaker": match["speaker"].strip(), "start": start, "text": match["text"]})
    if not turns:
        raise ValueError("paste at least one line of transcript")
    return turns


def _seconds(stamp: str) -> float:
    seconds = 0
    for part in stamp.split(":"):
        seconds = seconds * 60 + int(part)
    return float(seconds)


class PastedCallForm(forms.Form):
    title = forms.CharField(max_length=500)
    started_at = forms.DateTimeField(label="Date", initial=timezone.now)
    attendees = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: Name <email>, followed by [internal] for your own people.",
    )
    transcript = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 100}),
        help_text='One turn per line: "Speaker: text" or "[mm:ss] Speaker: text".',
    )

    def clean_attendees(self) -> list[dict]:
        try:
            return parse_attendees(self.cleaned_data["attendees"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_transcript(self) -> list[dict]:
        try:
            return parse_transcript(self.cleaned_data["transcript"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        started_at: datetime = data["started_at"]
        if timezone.is_naive(started_at):
            started_at = timezone.make_aware(started_at)
        turns = data["transcript"]
        owner = next((a["email"] for a in data["attendees"] if a["internal"]), None)
        try:
            self.call_in = CallIn(
                external_id=f"test-{uuid.uuid4()}",
                title=data["title"],
                started_at=started_at,
                duration_s=int(max(turn["start"] for turn in turns)) + 30,
                owner=owner,
                attendees=data["attendees"],
                transcript=turns,
            )
        except PydanticError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                field = error["loc"][0] if error["loc"][0] in self.fields else None
                self.add_error(field, f"{where}: {error['msg']}")
        return data


def do_test_workflow(workflow: Workflow, call: Call, *, actor) -> AgentRun:
    """Create a TEST run of ``workflow`` on ``call`` and start it (eagerly without a worker)."""
    with transaction.atomic():
        run = do_create_test_run(workflow, call)
        record_event(
            workflow.workspace,
            action="workflow.test_run",
            outcome="ok",
            actor_kind="user",
            actor_user=actor,
            crm=workflow.provider,
            object_type=workflow.object_type,
            reason="TEST: nothing is written",
            workflow_label=workflow.name,
            call_label=str(call)[:200],
            run_label=f"run {run.pk}",
        )
        transaction.on_commit(lambda: _start(run.pk))
    return run


@transaction.atomic
def do_test_workflow_on_transcript(workflow: Workflow, payload: CallIn, *, actor) -> AgentRun:
    """Store the pasted call (source "test") and test ``workflow`` on it, all or nothing."""
    call, _ = do_submit_call(workflow.workspace, payload, source=CallSource.TEST, actor=actor)
    return do_test_workflow(workflow, call, actor=actor)


def _start(run_id: int) -> None:
    from crm_agents import tasks

    try:
        tasks.run_workflow.delay(run_id)
    except Exception:
        # Run eagerly, the pipeline has recorded the failure on the run, which the result
        # page shows; the person who asked for the test should see that, not an error page.
        logger.exception("TEST run %s did not finish", run_id)
