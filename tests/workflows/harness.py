"""Running EnrollmentWorkflow on a test server with real store activities."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.enrollment import EnrollmentActivities
from domain.enrollment import (
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentStatus,
    ReminderPolicy,
    Stage,
)
from domain.ids import enrollment_workflow_id
from domain.jst import QuietHours
from domain.mail import MailKind, MailReceipt, MailRequest
from domain.terms import TermsDocument
from tests.waiting import eventually
from workflow_runner import workflow_runner
from workflows.enrollment import EnrollmentWorkflow

TERMS = TermsDocument(
    document="omron_circle_member_terms",
    version="2025-03-26",
    content_sha256="ab" * 32,
    url="https://example.invalid/terms",
)
SIGNUP_URL = "https://smile-e-pt.example/signup"


@dataclass
class MailRecorder:
    """Stands in for ``send_mail`` (by name); notes when each mail was scheduled.

    Mails of the kinds in ``hold`` stay in flight (noted, not finished) until ``release()``:
    a journey continues as new only after its mails, so a test can keep a run draining."""

    calls: list[tuple[MailRequest, datetime]] = field(default_factory=list)
    hold: frozenset[MailKind] = frozenset()
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    @activity.defn(name="send_mail")
    async def send_mail(self, req: MailRequest) -> MailReceipt:
        self.calls.append((req, activity.info().current_attempt_scheduled_time))
        if req.kind in self.hold:
            await self._released.wait()
        return MailReceipt(key=req.key, message_id=f"<{uuid.uuid4().hex}@test>")

    def release(self) -> None:
        self._released.set()

    def of_kind(self, kind: MailKind) -> list[tuple[MailRequest, datetime]]:
        return [(req, at) for req, at in self.calls if req.kind == kind]


@dataclass
class Journeys:
    """Starts journeys on the worker's task queue; terminates the ones left running.

    A workflow left running with timers would stop the time-skipping server from skipping
    in the tests that follow (its workflow tasks would have no worker).
    """

    client: Client
    task_queue: str
    handles: list[WorkflowHandle[EnrollmentWorkflow, EnrollmentResult]] = field(
        default_factory=list
    )

    async def start(
        self,
        account_id: str,
        policy: ReminderPolicy | None = None,
        quiet: QuietHours | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
        continue_as_new_after_events: int | None = None,
    ) -> WorkflowHandle[EnrollmentWorkflow, EnrollmentResult]:
        handle = await self.client.start_workflow(
            EnrollmentWorkflow.run,
            EnrollmentInput(
                account_id=account_id,
                circle_terms=TERMS,
                points_signup_url=SIGNUP_URL,
                reminders=policy or ReminderPolicy(),
                quiet_hours=quiet or QuietHours(),
                continue_as_new_after_events=continue_as_new_after_events,
            ),
            id=enrollment_workflow_id(account_id),  # accounts are fresh in every test
            task_queue=self.task_queue,
            start_signal=start_signal,
            start_signal_args=start_signal_args,
        )
        self.handles.append(handle)
        return handle

    async def terminate_running(self) -> None:
        """Terminate, but only once no activity is in flight.

        The time-skipping server keeps time locked while an activity or workflow task is in
        progress; terminating the workflow in that moment can leave the lock held, and
        every later ``env.sleep`` hangs. A workflow still busy after the wait is
        terminated anyway: the test is over either way.
        """
        for handle in self.handles:
            try:
                await eventually(partial(_closed_or_idle, handle), timeout=10)
            except AssertionError:
                pass
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                try:
                    await handle.terminate("test finished")
                except RPCError as err:
                    # The running one is a later start of the same workflow ID (a journey
                    # started again): this handle's own runs have ended.
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise


async def _closed_or_idle(handle: WorkflowHandle[EnrollmentWorkflow, EnrollmentResult]) -> bool:
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return True
    raw = description.raw_description
    return not raw.pending_activities and not raw.HasField("pending_workflow_task")


@asynccontextmanager
async def running_worker(
    client: Client,
    engine: Engine,
    recorder: MailRecorder,
    publish_status: Callable[..., Any] | None = None,
) -> AsyncIterator[Journeys]:
    """A worker with the real store activities (``publish_status`` may be replaced)."""
    journeys = Journeys(client, f"test-{uuid.uuid4().hex}")
    registry = EnrollmentActivities(engine)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=journeys.task_queue,
            workflows=[EnrollmentWorkflow],
            workflow_runner=workflow_runner(client.data_converter),
            activities=[
                registry.check_eligibility,
                registry.record_consent,
                registry.record_application,
                registry.cancel_application,
                registry.cancel_application_carrying_status,
                registry.mark_points_member_suspended,
                publish_status or registry.publish_status,
                recorder.send_mail,
            ],
            activity_executor=executor,
        ):
            try:
                yield journeys
            finally:
                await journeys.terminate_running()


async def wait_stage(
    handle: WorkflowHandle[EnrollmentWorkflow, EnrollmentResult], stage: Stage
) -> EnrollmentStatus:
    async def reached() -> EnrollmentStatus | None:
        status = await handle.query(EnrollmentWorkflow.get_status)
        return status if status.stage == stage else None

    return await eventually(reached, what=f"stage {stage.value}")


def near(actual: datetime, expected: datetime, slack: timedelta = timedelta(seconds=5)) -> bool:
    return expected - timedelta(seconds=1) <= actual <= expected + slack
