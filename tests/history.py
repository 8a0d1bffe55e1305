"""What a workflow's history says about its mails: the record that proves a mail was, or
was not, asked for, and when.

A history is complete for a closed workflow, and ordered: so "no such mail" is proved by
reading the history of a workflow that has closed (or that has recorded a later step), not
by waiting a while and finding the sink empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from domain.mail import MailKind, MailRequest
from tests.conftest import CONVERTER
from tests.waiting import eventually

SEND_MAIL = "send_mail"


@dataclass(frozen=True)
class MailActivity:
    """One ``send_mail`` activity as its workflow's history records it."""

    request: MailRequest
    scheduled_at: datetime
    outcome: str | None  # "completed", "failed", "timed_out", "canceled"; None while running
    attempt: int | None  # of the attempt that ended it (recorded with the outcome)


_OUTCOMES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
}


def _scheduled_event_id(event: Any) -> int | None:
    for attrs in (
        event.activity_task_started_event_attributes,
        event.activity_task_completed_event_attributes,
        event.activity_task_failed_event_attributes,
        event.activity_task_timed_out_event_attributes,
        event.activity_task_canceled_event_attributes,
    ):
        if attrs.scheduled_event_id:
            return int(attrs.scheduled_event_id)
    return None


async def mail_activities(handle: WorkflowHandle[Any, Any]) -> list[MailActivity]:
    """Every mail the workflow has asked for so far, in the order it asked."""
    history = await handle.fetch_history()
    scheduled: dict[int, tuple[MailRequest, datetime]] = {}
    outcome: dict[int, str] = {}
    attempt: dict[int, int] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == SEND_MAIL:
                [request] = await CONVERTER.decode_wrapper(attrs.input, [MailRequest])
                scheduled[event.event_id] = (request, event.event_time.ToDatetime(tzinfo=UTC))
            continue
        ref = _scheduled_event_id(event)
        if ref is None or ref not in scheduled:
            continue
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempt[ref] = int(event.activity_task_started_event_attributes.attempt)
        elif event.event_type in _OUTCOMES:
            outcome[ref] = _OUTCOMES[event.event_type]
    return [
        MailActivity(request, at, outcome.get(ref), attempt.get(ref))
        for ref, (request, at) in scheduled.items()
    ]


def kinds(activities: list[MailActivity]) -> list[MailKind]:
    return [a.request.kind for a in activities]


async def closed_mail_activities(handle: WorkflowHandle[Any, Any]) -> list[MailActivity]:
    """The mails of a workflow that has closed: its history is complete, so a mail missing
    here was never asked for. Waits for the workflow to close."""
    await eventually(lambda: _closed(handle), what=f"workflow {handle.id} closed")
    return await mail_activities(handle)


async def _closed(handle: WorkflowHandle[Any, Any]) -> bool:
    status = (await handle.describe()).status
    return status not in (None, WorkflowExecutionStatus.RUNNING)


async def completed_mail(
    handle: WorkflowHandle[Any, Any], kind: MailKind, count: int = 1
) -> list[MailActivity]:
    """Wait until the history records ``count`` completed mails of ``kind``; return all
    mails of that kind (completed or not) at that moment."""

    async def done() -> list[MailActivity]:
        of_kind = [a for a in await mail_activities(handle) if a.request.kind == kind]
        finished = [a for a in of_kind if a.outcome == "completed"]
        return of_kind if len(finished) >= count else []

    return await eventually(done, what=f"{count} completed {kind.value} mail(s) in history")
