"""Starting journeys from the API: the monitoring system's announcement and the customer's
"start or resume", with the Temporal server's outages mapped to 503.

An announcement never depends on the Temporal server being up: the account and its
pending start are committed together (``store/starts.py``), the start is tried at once,
and when it cannot be made now the reconciler in the workers makes it later
(``journey_starts.py``). The monitoring system gets 202 then: nothing for it to do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar

from fastapi import status
from sqlalchemy.engine import Engine
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas import AnnounceAccountRequest
from api.security import hash_password_async, verify_password
from api.services import enrollment as enrollment_service
from api.services.workflows import answer
from config import Settings
from domain.enrollment import EnrollmentStatus
from domain.errors import ErrorCode
from domain.ids import enrollment_workflow_id
from journey_starts import customer_start, start_recorded, utcnow
from store import starts as starts_store
from store.enrollment import RuleViolation
from workflows.enrollment import EnrollmentWorkflow

T = TypeVar("T")

# The server could not serve the call now; anything else is a bug and stays a 500.
SERVER_TROUBLE = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
)
# How often a customer's start may find the open run's journey over before giving up.
CLOSING_ROUNDS = 3


async def temporal_call(settings: Settings, call: Awaitable[T]) -> T:
    """Await a call on the Temporal server itself (start, describe, list); 503 when the
    server cannot be reached within ``temporal_call_timeout``."""
    try:
        async with asyncio.timeout(settings.temporal_call_timeout.total_seconds()):
            return await call
    except TimeoutError:
        raise ApiError(ErrorCode.TEMPORAL_UNAVAILABLE) from None
    except RPCError as err:
        if err.status in SERVER_TROUBLE:
            raise ApiError(ErrorCode.TEMPORAL_UNAVAILABLE) from None
        raise


@dataclass(frozen=True)
class Announcement:
    status_code: int
    account_id: str
    workflow_id: str
    journey: Literal["started", "pending"]


async def announce(
    client: Client, engine: Engine, settings: Settings, body: AnnounceAccountRequest
) -> Announcement:
    """Record the account with its pending start, then try the start.

    201: recorded and started now. 200: the same announcement was recorded before, and its
    journey runs (started now or earlier). 202: recorded, the start is pending.
    """
    password_hash = await hash_password_async(body.password)  # CPU-heavy
    account, gateways = body.rows(password_hash)
    try:
        announced = await asyncio.to_thread(
            lambda: starts_store.record_announcement(
                engine,
                account,
                gateways,
                now=utcnow(),
                lease=settings.journey_start_lease,
                same_password=lambda stored: verify_password(stored, body.password),
            )
        )
    except RuleViolation as err:
        raise ApiError(err.code) from None
    started = announced.started
    if announced.claimed:
        started = await start_recorded(client, engine, settings, announced.account_id)
    if not started:
        code = status.HTTP_202_ACCEPTED
    elif announced.created:
        code = status.HTTP_201_CREATED
    else:
        code = status.HTTP_200_OK
    return Announcement(
        status_code=code,
        account_id=announced.account_id,
        workflow_id=enrollment_workflow_id(announced.account_id),
        journey="started" if started else "pending",
    )


async def _open_run_id(client: Client, workflow_id: str) -> str | None:
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.run_id if described.status == WorkflowExecutionStatus.RUNNING else None


async def start_or_resume(
    client: Client, engine: Engine, settings: Settings, account_id: str
) -> tuple[str, EnrollmentStatus]:
    """The customer's journey under way, or a new one; never one that is over.

    One call: the start (``USE_EXISTING``: an open run is attached to; a closed journey
    starts anew) with the update ``settle_start``, which answers once the run's
    eligibility check is done and the store's row shows it (update-with-start). A run
    this start made (``fresh``) is returned whatever its stage (a new journey may end at
    once as ineligible). A run that was open already and whose journey is over only sends
    its last mails: wait for it to close and start again.

    A worker from before ``settle_start`` (a rolling deploy) refuses that update; the
    start is made all the same, and its first status is read as before
    (``settled_status_of``). No answer in time: 503, ``temporal_unavailable`` if the
    server itself does not answer, else ``worker_unavailable``.
    """
    workflow_id = enrollment_workflow_id(account_id)
    handle = enrollment_service.handle_for(client, account_id)
    for _ in range(CLOSING_ROUNDS):
        start = customer_start(settings, account_id)
        call = client.execute_update_with_start_workflow(
            EnrollmentWorkflow.settle_start,
            start_workflow_operation=start,
            # Each start is its own request: a retry asks the run again (nothing to redo).
            id=f"start-{uuid.uuid4().hex}",
        )
        try:
            settled = await _answer_or_server_gone(settings, client, handle, call, workflow_id)
            state, fresh = settled.status, settled.fresh
        except WorkflowUpdateFailedError as err:
            if not _unknown_update(err):
                raise
            run_id = (await start.workflow_handle()).result_run_id
            state = await enrollment_service.settled_status_of(
                client, engine, settings, account_id, run_id
            )
            fresh = True  # the old way cannot tell; the stage it answers is the run's
        except RPCError as err:
            if err.status in SERVER_TROUBLE:
                raise ApiError(ErrorCode.TEMPORAL_UNAVAILABLE) from None
            raise
        run = await start.workflow_handle()
        # Also closes the account's pending start in the outbox, if it has one.
        await asyncio.to_thread(
            starts_store.mark_started, engine, account_id, workflow_id, now=utcnow()
        )
        if fresh or not state.stage.is_final:
            return workflow_id, state
        try:
            async with asyncio.timeout(settings.workflow_answer_timeout.total_seconds()):
                await run.result()
        except WorkflowFailureError:
            pass  # closed all the same
        except TimeoutError:
            break
        except RPCError as err:
            if err.status in SERVER_TROUBLE:
                raise ApiError(ErrorCode.TEMPORAL_UNAVAILABLE) from None
            raise
    raise ApiError(ErrorCode.JOURNEY_CLOSING)


async def _answer_or_server_gone(
    settings: Settings,
    client: Client,
    handle: enrollment_service.Handle,
    call: Awaitable[T],
    workflow_id: str,
) -> T:
    """``answer(call)``; but when it has not come within ``temporal_call_timeout``, ask the
    server whether it is there at all (a ``describe``): a server that does not answer is
    503 ``temporal_unavailable`` then, not a ``worker_unavailable`` after the whole
    ``workflow_answer_timeout``. The call itself is the one request of a healthy start."""
    answering = asyncio.ensure_future(answer(settings, handle, call))
    try:
        done, _ = await asyncio.wait(
            {answering}, timeout=settings.temporal_call_timeout.total_seconds()
        )
        if not done:
            await temporal_call(settings, _open_run_id(client, workflow_id))
        return await answering
    finally:
        answering.cancel()


def _unknown_update(err: WorkflowUpdateFailedError) -> bool:
    """The run's worker has no such update handler (the SDK refuses it as a RuntimeError)."""
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == "RuntimeError"
