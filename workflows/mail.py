"""Sending mail from a workflow without making a customer's request wait for SMTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.mail import MailActivities
    from domain.mail import MailRequest

ArgT = TypeVar("ArgT")

MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
# How long a mail may keep failing temporarily before an operator is asked to look.
MAIL_GIVE_UP_AFTER = timedelta(days=1)


def send_in_background(
    tasks: list[asyncio.Task[None]],
    request: MailRequest,
    on_trouble: Callable[[], None],
    task_queue: str | None,
) -> None:
    """Start the mail activity as a task; the workflow awaits ``tasks`` before it ends."""
    mail_in_background(
        tasks, MailActivities.send_mail, request, request.kind.value, on_trouble, task_queue
    )


def mail_in_background(
    tasks: list[asyncio.Task[None]],
    activity: Callable[[Any, ArgT], Awaitable[object]],
    arg: ArgT,
    what: str,
    on_trouble: Callable[[], None],
    task_queue: str | None,
) -> None:
    """Run a mail-sending activity as a task, retried for at most ``MAIL_GIVE_UP_AFTER``;
    a permanent failure (non-retryable) ends it at once. Either way ``on_trouble`` flags
    the workflow for an operator and the workflow goes on. ``task_queue``: the mail
    queue of the workflow's input (``Settings.mail_task_queue``); None, its own."""

    async def deliver() -> None:
        try:
            await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=MAIL_GIVE_UP_AFTER,
                retry_policy=MAIL_RETRY,
                task_queue=task_queue,
                # What the UI lists for this activity: the mail's kind, never its recipient.
                summary=f"mail: {what}",
            )
        except ActivityError as err:
            workflow.logger.warning("mail %s not delivered: %s", what, type(err.cause).__name__)
            on_trouble()

    tasks.append(asyncio.create_task(deliver()))
