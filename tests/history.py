"""What a workflow's history says about its mails: the record that proves a mail was, or
was not, asked for, and when.

A history is complete for a closed workflow, and ordered: so "no such mail" is proved by
reading the history of a workflow that has closed (or that has recorded a later step), not
by waiting a while and finding the sink empty.

A journey continues as new (docs/VERSIONING.md), so one workflow is a chain of runs, each
with its own history: these helpers read the whole chain, from the first run to the one
running now (or the one that closed it), by the link each run's last event records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

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


# How a run ends; "continued as new" is not an end of the workflow: the chain goes on.
_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
}


async def run_histories(handle: WorkflowHandle[Any, Any]) -> list[list[HistoryEvent]]:
    """The events of each run of the handle's chain, first run first.

    The chain starts at the handle's first run (a handle from ``start_workflow``), else at
    the first run the handle's run (or the latest run of its ID) names in its started
    event, and follows each ``continued as new`` event to the next run. A later start of
    the same workflow ID (a journey started again after it ended) is another chain."""
    client = handle._client  # the handle's own connection (and data converter)
    run_id = handle.first_execution_run_id
    if not run_id:
        own = await handle.fetch_history()
        run_id = own.events[0].workflow_execution_started_event_attributes.first_execution_run_id
        run_id = run_id or handle.run_id  # a server that does not record it
    runs: list[list[HistoryEvent]] = []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        events = list(history.events)
        runs.append(events)
        last = events[-1] if events else None
        continued = (
            last is not None
            and last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        )
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last is not None and continued
            else None
        )
    return runs


async def mail_activities(handle: WorkflowHandle[Any, Any]) -> list[MailActivity]:
    """Every mail the workflow has asked for so far, in the order it asked, across the
    runs of its chain."""
    found: list[MailActivity] = []
    for events in await run_histories(handle):
        found += await _mails_of_run(events)
    return found


async def _mails_of_run(events: list[HistoryEvent]) -> list[MailActivity]:
    scheduled: dict[int, tuple[MailRequest, datetime]] = {}
    outcome: dict[int, str] = {}
    attempt: dict[int, int] = {}
    for event in events:
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
    here was never asked for. Waits for the last run of the chain to close (a run that
    continued as new has not closed the workflow)."""
    await eventually(lambda: closed(handle), what=f"workflow {handle.id} closed")
    return await mail_activities(handle)


async def closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """The handle's chain has ended: its last run closed, other than by continuing."""
    last = (await run_histories(handle))[-1]
    return bool(last) and last[-1].event_type in _CLOSED


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


async def local_activity_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity type of every local activity the chain's runs recorded, in order (the
    marker's ``data`` is the SDK core's own JSON, not a payload the codec encrypts)."""
    found: list[str] = []
    for events in await run_histories(handle):
        for event in events:
            marker = event.marker_recorded_event_attributes
            if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
                continue
            if marker.marker_name != "core_local_activity":
                continue
            data = json.loads(marker.details["data"].payloads[0].data)
            found.append(str(data["activity_type"]))
    return found
