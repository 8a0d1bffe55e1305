"""Refusals shared by the workflows: a stable error code as an ApplicationError, and store
activities whose rule refusals become the current update's own failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.errors import ErrorCode, message_for

STORE_TIMEOUT = timedelta(seconds=30)

ActivitiesT = TypeVar("ActivitiesT")
InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


def refusal(code: ErrorCode) -> ApplicationError:
    """The failure an update (or validator) raises: the code is its type, never retried."""
    return ApplicationError(message_for(code), type=code.value, non_retryable=True)


@overload
async def run_store_activity(
    activity: Callable[[ActivitiesT, InputT], Awaitable[ResultT]],
    inp: InputT,
    summary: str | None = None,
) -> ResultT: ...


@overload
async def run_store_activity(
    activity: Callable[[ActivitiesT, InputT], ResultT], inp: InputT, summary: str | None = None
) -> ResultT: ...


async def run_store_activity(
    activity: Callable[[Any, Any], Any], inp: Any, summary: str | None = None
) -> Any:
    """Run a store activity method on its one input model; a rule refusal (non-retryable,
    typed) is re-raised as the caller's own ApplicationError, so the API sees the code,
    not an ActivityError. ``summary`` is what the UI shows for the activity (user
    metadata: encrypted by the payload codec like any payload; still codes only)."""
    try:
        return await workflow.execute_activity_method(
            activity, inp, start_to_close_timeout=STORE_TIMEOUT, summary=summary
        )
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type:
            raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
        raise
