"""Starting journeys: the one place that starts an EnrollmentWorkflow, and the reconciler
that drains the outbox of journey starts (``store/starts.py``).

The API records an announced account together with a pending start and tries the start at
once; when the Temporal server cannot be reached the start stays pending, and the
reconciler, which runs in every worker process, starts it later. Several workers (and API
instances) may try the same start: each claims the row first (a lease), and a start that
slips past the lease is harmless, because the outbox start uses ``REJECT_DUPLICATE`` with
``USE_EXISTING``: a journey that runs is reused, one that has already run (within the
namespace's retention) counts as started, and no second run (and no second invitation) is
made.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from config import Settings
from domain.enrollment import EnrollmentInput, EnrollmentResult
from domain.ids import enrollment_workflow_id
from store import starts as starts_store
from workflows.enrollment import EnrollmentWorkflow

log = logging.getLogger(__name__)

# How many pending starts one reconciler pass claims at most.
BATCH = 50


def utcnow() -> datetime:
    return datetime.now(UTC)


def journey_input(settings: Settings, account_id: str) -> EnrollmentInput:
    return EnrollmentInput(
        account_id=account_id,
        circle_terms=settings.circle_terms(),
        points_signup_url=settings.points_signup_url,
        reminders=settings.reminder,
        quiet_hours=settings.quiet,
        mail_task_queue=settings.mail_queue,
    )


SUMMARY = "Eco-katsu circle journey"


def customer_start(
    settings: Settings, account_id: str
) -> WithStartWorkflowOperation[EnrollmentWorkflow, EnrollmentResult]:
    """The customer's start (``POST /v1/journey``), sent with the update that answers it
    (``settle_start``, one call): an open run is attached to, a closed journey starts
    anew."""
    return WithStartWorkflowOperation(
        EnrollmentWorkflow.run,
        journey_input(settings, account_id),
        id=enrollment_workflow_id(account_id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=SUMMARY,
    )


async def start_journey(
    client: Client, settings: Settings, account_id: str, *, anew: bool
) -> WorkflowHandle[EnrollmentWorkflow, EnrollmentResult]:
    """Start the account's journey, or attach to the run that is open.

    ``anew``: a closed journey starts again (the customer asks for it). Without it (the
    outbox), a journey that has run already counts as started: the outbox promises one
    journey per announcement, not one per attempt.
    """
    workflow_id = enrollment_workflow_id(account_id)
    try:
        return await client.start_workflow(
            EnrollmentWorkflow.run,
            journey_input(settings, account_id),
            id=workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if anew
                else WorkflowIDReusePolicy.REJECT_DUPLICATE
            ),
            static_summary=SUMMARY,
        )
    except WorkflowAlreadyStartedError as err:
        if anew:
            raise
        return client.get_workflow_handle_for(
            EnrollmentWorkflow.run, workflow_id, run_id=err.run_id
        )


def failure_kind(err: BaseException) -> str:
    """What went wrong, without any message text (messages may quote the request)."""
    if isinstance(err, RPCError):
        return f"rpc:{err.status.name}"
    if isinstance(err, TimeoutError):
        return "timeout"
    return type(err).__name__


async def start_recorded(
    client: Client, engine: Engine, settings: Settings, account_id: str
) -> bool:
    """Try a claimed start once; True when the journey runs (the start is then closed).

    On failure the lease is freed at once, so the next reconciler pass tries again; the
    failure's kind is noted on the row for operators.
    """
    try:
        async with asyncio.timeout(settings.temporal_call_timeout.total_seconds()):
            handle = await start_journey(client, settings, account_id, anew=False)
    except Exception as err:  # whatever failed, the start stays recorded
        kind = failure_kind(err)
        if isinstance(err, RPCError | TimeoutError):
            log.warning("journey start for account %s pending (%s)", account_id, kind)
        else:
            log.exception("journey start for account %s failed (%s)", account_id, kind)
        await asyncio.to_thread(
            starts_store.release, engine, account_id, retry_at=utcnow(), error=kind
        )
        return False
    await asyncio.to_thread(starts_store.mark_started, engine, account_id, handle.id, now=utcnow())
    return True


@dataclass(frozen=True)
class Drained:
    started: int
    failed: int


class JourneyStartReconciler:
    """Drains pending journey starts; ``run()`` loops until cancelled (worker.py)."""

    def __init__(self, client: Client, engine: Engine, settings: Settings) -> None:
        self._client = client
        self._engine = engine
        self._settings = settings

    async def drain_once(self) -> Drained:
        """Claim the due starts and try each; stop at the first failure (the server is most
        likely down, and the others would only wait for the same timeout)."""
        claimed = await asyncio.to_thread(
            starts_store.claim_due,
            self._engine,
            now=utcnow(),
            lease=self._settings.journey_start_lease,
            limit=BATCH,
        )
        started = 0
        for index, account_id in enumerate(claimed):
            if await start_recorded(self._client, self._engine, self._settings, account_id):
                started += 1
                continue
            for left in claimed[index + 1 :]:
                await asyncio.to_thread(starts_store.release, self._engine, left, retry_at=utcnow())
            return Drained(started=started, failed=1)
        if started:
            log.info("started %d pending journeys", started)
        return Drained(started=started, failed=0)

    async def run(self) -> None:
        interval = self._settings.journey_start_interval.total_seconds()
        while True:
            try:
                await self.drain_once()
            except Exception:  # the store may be down too: log, and try again later
                log.exception("journey start reconciler pass failed")
            await asyncio.sleep(interval)
