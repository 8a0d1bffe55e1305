"""Talking to a customer's EnrollmentWorkflow: start, update, query, with error mapping.

An update or query needs a worker. With none running, the server holds the call; we stop
waiting after ``workflow_answer_timeout`` and answer 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import STATUS, ApiError
from config import Settings
from domain.enrollment import EnrollmentStatus, Stage
from domain.errors import ErrorCode
from domain.ids import enrollment_workflow_id
from workflows.enrollment import EnrollmentWorkflow

T = TypeVar("T")


def handle_for(client: Client, account_id: str) -> WorkflowHandle[EnrollmentWorkflow, object]:
    return client.get_workflow_handle_for(
        EnrollmentWorkflow.run, enrollment_workflow_id(account_id)
    )


async def answer(settings: Settings, call: Awaitable[T]) -> T:
    """Await a workflow call, mapping Temporal's failures to the API's errors."""
    try:
        async with asyncio.timeout(settings.workflow_answer_timeout.total_seconds()):
            return await call
    except TimeoutError:
        raise ApiError(ErrorCode.WORKER_UNAVAILABLE) from None
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type in STATUS:
            raise ApiError(cause.type) from None
        raise
    except WorkflowQueryFailedError:
        raise ApiError(ErrorCode.WORKER_UNAVAILABLE) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # An update to a journey that has ended: "workflow execution already completed".
            closed = "already completed" in err.message
            raise ApiError(
                ErrorCode.JOURNEY_CLOSED if closed else ErrorCode.JOURNEY_NOT_FOUND
            ) from None
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE):
            raise ApiError(ErrorCode.WORKER_UNAVAILABLE) from None
        raise


async def status_of(client: Client, settings: Settings, account_id: str) -> EnrollmentStatus:
    return await answer(
        settings, handle_for(client, account_id).query(EnrollmentWorkflow.get_status)
    )


async def settled_status_of(
    client: Client, settings: Settings, account_id: str
) -> EnrollmentStatus:
    """The status once the eligibility check is done (it takes milliseconds).

    Polled with queries, which leave nothing in history, rather than an update, which
    would add events each time a customer reloads the page.
    """

    async def settle() -> EnrollmentStatus:
        handle = handle_for(client, account_id)
        while True:
            status = await handle.query(EnrollmentWorkflow.get_status)
            if status.stage != Stage.CHECKING:
                return status
            await asyncio.sleep(0.05)

    return await answer(settings, settle())
