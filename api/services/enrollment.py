"""Talking to a customer's EnrollmentWorkflow: start, update, query.

Failures are mapped by ``api.services.workflows.answer``. Every update has a stable ID so
that a client's retry attaches to the first attempt (its result, never a second action):
the request's ``Idempotency-Key`` if it sent one, else a key derived from the request:

- consent / decline: the account and the body (the journey moves on after either, so the
  same body again is the same request; a journey started anew is a new run, and update
  IDs are per run);
- apply: the account, the gateway and how many of its applications were cancelled
  (applying again after a cancellation is a new request);
- cancel: the account, the gateway and how many applications it has had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowHandle

from api.errors import ApiError
from api.schemas import ApplicationCompleted, CancelResponse, ConsentBody, ConsentResponse
from api.services.workflows import answer, update_id
from config import Settings
from domain.enrollment import (
    ApplyRequest,
    CancelRequest,
    ConsentRequest,
    EnrollmentStatus,
    Stage,
)
from domain.errors import ErrorCode
from domain.ids import enrollment_workflow_id
from store import enrollment as enrollment_store
from store import journey_status
from workflows.enrollment import EnrollmentWorkflow

Handle = WorkflowHandle[EnrollmentWorkflow, object]
# A start reads its run's first status from the store every STORE_POLL seconds, for at
# most STORE_SETTLE_WAIT seconds before it asks the workflow instead.
STORE_POLL = 0.005
STORE_SETTLE_WAIT = 2.0


def handle_for(client: Client, account_id: str) -> Handle:
    return client.get_workflow_handle_for(
        EnrollmentWorkflow.run, enrollment_workflow_id(account_id)
    )


async def status_of(
    connect: Callable[[], Awaitable[Client]], engine: Engine, settings: Settings, account_id: str
) -> EnrollmentStatus:
    """Where the journey stands: the row its workflow published in the store (one read,
    no round trip to the worker, and an answer while no worker runs); a journey whose run
    publishes no row (started before ``status-in-store``) is asked by a query.

    The same statement checks that the caller's account still exists (401 if not): the
    routes take the caller from the token alone (``TokenAccountDep``), so a status costs
    one thread-pool hop and one statement. Temporal is asked for (``connect``) only for
    the query: a status in the store answers while the server is unreachable, even in an
    API that has never reached it."""
    found = await asyncio.to_thread(journey_status.read_for_caller, engine, account_id)
    if found is None:
        raise ApiError(ErrorCode.NOT_AUTHENTICATED)
    if found.published is not None:
        return found.published.status
    if not found.started:
        raise ApiError(ErrorCode.JOURNEY_NOT_FOUND)
    handle = handle_for(await connect(), account_id)
    return await answer(settings, handle, handle.query(EnrollmentWorkflow.get_status))


async def settled_status_of(
    client: Client, engine: Engine, settings: Settings, account_id: str, run_id: str | None
) -> EnrollmentStatus:
    """The status of run ``run_id`` once the eligibility check is done (milliseconds):
    how a start learns it from a worker from before ``settle_start`` (during a rolling
    deploy; ``api/services/starts.py`` asks that update first).

    Read from the store's row as soon as that run has published it; a run that publishes
    none (a worker without ``status-in-store``) is polled with queries after
    ``STORE_SETTLE_WAIT``, which leave nothing in history.
    """
    handle = handle_for(client, account_id)

    async def settle() -> EnrollmentStatus:
        waited = 0.0
        while waited < STORE_SETTLE_WAIT:
            published = await asyncio.to_thread(journey_status.read, engine, account_id)
            if published is not None and published.run_id == run_id:
                if published.status.stage != Stage.CHECKING:
                    return published.status
            await asyncio.sleep(STORE_POLL)
            waited += STORE_POLL
        while True:
            status = await handle.query(EnrollmentWorkflow.get_status)
            if status.stage != Stage.CHECKING:
                return status
            await asyncio.sleep(0.05)

    return await answer(settings, handle, settle())


async def decide_terms(
    client: Client, settings: Settings, account_id: str, body: ConsentBody, key: str | None
) -> ConsentResponse:
    """同意する or 同意しない, one update either way."""
    handle = handle_for(client, account_id)
    request = f"key:{key}" if key else f"body:{body.agree}:{body.terms_version}"
    if body.agree:
        agreed = await answer(
            settings,
            handle,
            handle.execute_update(
                EnrollmentWorkflow.give_consent,
                # The current terms go along: a journey started before a revision moves
                # to them instead of refusing the version the customer was shown.
                ConsentRequest(
                    terms_version=body.terms_version, current_terms=settings.circle_terms()
                ),
                id=update_id("consent", account_id, request),
            ),
        )
        return ConsentResponse(stage=agreed.stage, decided_at=agreed.consented_at)
    declined = await answer(
        settings,
        handle,
        handle.execute_update(
            EnrollmentWorkflow.decline, id=update_id("consent", account_id, request)
        ),
    )
    return ConsentResponse(stage=declined.stage, decided_at=declined.declined_at)


async def apply_gateway(
    connect: Callable[[], Awaitable[Client]],
    engine: Engine,
    settings: Settings,
    account_id: str,
    gateway_id: str,
    key: str | None,
) -> ApplicationCompleted:
    """申込確定; the answer is the completion screen's data. The route takes the caller
    from the token alone (``TokenAccountDep``): one statement checks that the account
    still exists and its journey was started, and counts what the update ID needs; only
    then is Temporal asked for (``connect``), so a caller the store refuses gets 401 or
    404 even while the server is unreachable."""
    caller = await _application_caller(engine, account_id, gateway_id)
    request = f"key:{key}" if key else f"body:{gateway_id}:{caller.cancelled}"
    handle = handle_for(await connect(), account_id)
    receipt = await answer(
        settings,
        handle,
        handle.execute_update(
            EnrollmentWorkflow.apply_gateway,
            ApplyRequest(gateway_id=gateway_id),
            id=update_id("apply", account_id, request),
        ),
    )
    return ApplicationCompleted(**receipt.model_dump(), applied_at_jst=receipt.applied_at_jst)


async def cancel_application(
    connect: Callable[[], Awaitable[Client]],
    engine: Engine,
    settings: Settings,
    account_id: str,
    gateway_id: str,
    key: str | None,
) -> CancelResponse:
    """解約 of one gateway's application (the caller checked as for 申込確定)."""
    caller = await _application_caller(engine, account_id, gateway_id)
    request = f"key:{key}" if key else f"body:{gateway_id}:{caller.applications}"
    handle = handle_for(await connect(), account_id)
    receipt = await answer(
        settings,
        handle,
        handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=gateway_id),
            id=update_id("cancel", account_id, request),
        ),
    )
    return CancelResponse(**receipt.model_dump())


async def _application_caller(
    engine: Engine, account_id: str, gateway_id: str
) -> enrollment_store.ApplicationCaller:
    """One thread-pool hop and one statement: 401 if the account is gone, 404 if its
    journey was never started (as ``EnrolledDep`` answers), else its counts."""
    caller = await asyncio.to_thread(
        enrollment_store.application_caller, engine, account_id, gateway_id
    )
    if caller is None:
        raise ApiError(ErrorCode.NOT_AUTHENTICATED)
    if not caller.started:
        raise ApiError(ErrorCode.JOURNEY_NOT_FOUND)
    return caller
