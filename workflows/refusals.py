"""Refusals shared by the workflows: a stable error code as an ApplicationError, and store
activities whose rule refusals become the current update's own failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.errors import ErrorCode, message_for

STORE_TIMEOUT = timedelta(seconds=30)
# Store writes are retried a bounded number of times (about a minute of backoff): an
# update that awaits one holds its workflow's lock, and a permanent fault must surface.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=6,
)
# How a local activity's failure reaches the workflow: an ActivityError, or (this SDK,
# once the retries ran out) the activity's own ApplicationError, unwrapped. Catch both:
# an uncaught one would end the task awaiting it (tests/workflows/test_status_in_store.py).
LOCAL_ACTIVITY_FAILURES = (ActivityError, ApplicationError)
# A local activity (a short store write inside an update) is bounded tighter still.
LOCAL_STORE_TIMEOUT = timedelta(seconds=10)
LOCAL_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)

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
            activity,
            inp,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
            summary=summary,
        )
    except ActivityError as err:
        raise _refusal_for(err) from None


@overload
async def run_local_store_activity(
    activity: Callable[[ActivitiesT, InputT], Awaitable[ResultT]], inp: InputT
) -> ResultT: ...


@overload
async def run_local_store_activity(
    activity: Callable[[ActivitiesT, InputT], ResultT], inp: InputT
) -> ResultT: ...


async def run_local_store_activity(activity: Callable[[Any, Any], Any], inp: Any) -> Any:
    """``run_store_activity`` as a local activity: for a short write an update waits on
    (one workflow task instead of three; bounded, so the update's lock is never held
    for long)."""
    try:
        return await workflow.execute_local_activity_method(
            activity,
            inp,
            start_to_close_timeout=LOCAL_STORE_TIMEOUT,
            schedule_to_close_timeout=LOCAL_STORE_TIMEOUT * 3,
            retry_policy=LOCAL_STORE_RETRY,
        )
    except LOCAL_ACTIVITY_FAILURES as err:
        raise _refusal_for(err) from None


# Patch (docs/VERSIONING.md): a store write an update awaits runs as a local activity.
PATCH_LOCAL_STORE_WRITES = "store-writes-local"


@overload
async def run_update_store_activity(
    activity: Callable[[ActivitiesT, InputT], Awaitable[ResultT]],
    inp: InputT,
    summary: str | None = None,
) -> ResultT: ...


@overload
async def run_update_store_activity(
    activity: Callable[[ActivitiesT, InputT], ResultT], inp: InputT, summary: str | None = None
) -> ResultT: ...


async def run_update_store_activity(
    activity: Callable[[Any, Any], Any], inp: Any, summary: str | None = None
) -> Any:
    """A store write an update must see before it answers: since patch
    ``store-writes-local`` a local activity (the update answers in one workflow task, not
    three), with the same input (its idempotency key) and bounded retries; runs recorded
    before the patch replay their normal activity."""
    if workflow.patched(PATCH_LOCAL_STORE_WRITES):
        return await run_local_store_activity(activity, inp)
    return await run_store_activity(activity, inp, summary)


def _refusal_for(err: ActivityError | ApplicationError) -> ApplicationError:
    """A rule refusal keeps its code; anything else (the bounded retries ran out) is
    "try again later" (503 at the API), not an untyped failure."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type:
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    return refusal(ErrorCode.WORKER_UNAVAILABLE)
