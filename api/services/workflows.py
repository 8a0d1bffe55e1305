"""Calling a workflow and turning what Temporal answers into the API's answer.

Every decision is taken from a typed exception or from ``describe()``, never from an
error's message text (the text differs with timing: an update sent to a workflow that
has just closed fails with another message than one sent a moment later, and an answer
that matched the text flipped between 409 and 404 under load).

- an update or query the server holds because no worker answers: after
  ``workflow_answer_timeout``, or when the server gives up first
  (``WorkflowUpdateRPCTimeoutOrCancelledError``), ``worker_unavailable`` (503);
- a refusal from the workflow (``ApplicationError(type=code)``): that code;
- ``NOT_FOUND``: ``journey_closed`` if ``describe()`` finds the workflow closed, else
  ``journey_not_found``;
- the Temporal server down (``RPCError`` UNAVAILABLE …): left to the app's handler, 503.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from config import Settings
from domain.errors import ErrorCode

T = TypeVar("T")
CODES = frozenset(code.value for code in ErrorCode)


async def answer(settings: Settings, handle: WorkflowHandle[Any, Any], call: Awaitable[T]) -> T:
    """Await a call to ``handle``'s workflow, mapping Temporal's failures to ``ApiError``."""
    try:
        async with asyncio.timeout(settings.workflow_answer_timeout.total_seconds()):
            return await call
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise ApiError(ErrorCode.WORKER_UNAVAILABLE) from None
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type in CODES:
            raise ApiError(cause.type) from None
        # Accepted, then the workflow closed before the update finished.
        if await is_closed(handle):
            raise ApiError(ErrorCode.JOURNEY_CLOSED) from None
        raise
    except WorkflowQueryFailedError:
        raise ApiError(ErrorCode.WORKER_UNAVAILABLE) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            closed = await is_closed(handle)
            raise ApiError(
                ErrorCode.JOURNEY_CLOSED if closed else ErrorCode.JOURNEY_NOT_FOUND
            ) from None
        raise


async def is_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow exists and has ended (False when there is none)."""
    try:
        described = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status != WorkflowExecutionStatus.RUNNING


def update_id(route: str, *parts: str) -> str:
    """A stable update ID: a retry of the same request attaches to the first attempt.

    Hashed, because update IDs are stored in plaintext in the history and the parts may
    carry a client's ``Idempotency-Key`` or a token hash.
    """
    digest = hashlib.sha256("\x1f".join((route, *parts)).encode()).hexdigest()[:40]
    return f"{route}-{digest}"
