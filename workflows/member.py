"""MemberWorkflow: the スマイルeポイント member's actions after registration.

Workflow ID: ``member-<signup id>`` (the signup that created the member: random, no
address). Started by the API with update-with-start of the member's action, so a
member's actions run one at a time, under one lock; it ends as soon as nothing is left
to wait for (no change link pending, every mail delivered). The member's state lives in
the store (``points_members``, ``member_email_changes``), not here: the tombstone of a
cancelled member and the rule that a link is valid only while its row is pending and
unexpired must hold long after Temporal's retention, so a workflow of years would only
duplicate them (and need continue-as-new). Input: ``MemberInput``.

Messages
- update ``request_email_change(EmailChangeRequest) -> EmailChangeIssued``: the API has
  stored the new address; an activity replaces the member's older pending link, makes
  the new one and mails it to the new address (or, to an address that is already a
  member's, a neutral note: the answer is the same);
- update ``confirm_email_change(ConfirmEmailChange) -> EmailChanged``: the link was used;
  the store changes the address in one transaction (single use, unexpired, the newest);
  the new address gets 変更完了, the old one is told of the change;
- update ``cancel_membership() -> MembershipCancelled``: 退会; the member's row stays as
  the tombstone (``store.signup.cancel_member``), a pending link dies, and 退会手続き完了 is
  mailed. Every later update is refused (``member_cancelled``).

Timers
- the pending change link expires at its ``expires_at`` (``ECOKATSU_SIGNUP_LINK_TTL``,
  24 h): the store row becomes ``expired``; then the workflow ends. A newer request
  replaces the timer with its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.enrollment import EnrollmentActivities
    from activities.mail import MailActivities
    from activities.member import MemberActivities
    from domain.errors import ErrorCode, message_for
    from domain.jst import format_jst
    from domain.mail import MailKind, MailRequest
    from domain.member import (
        ApplyEmailChangeInput,
        CancelMembershipInput,
        CircleCancelledInput,
        ConfirmEmailChange,
        EmailChanged,
        EmailChangeIssued,
        EmailChangeRequest,
        ExpireEmailChangeInput,
        IssueEmailChangeInput,
        MemberInput,
        MembershipCancelled,
    )
    from workflows.mail import MAIL_GIVE_UP_AFTER, MAIL_RETRY, send_in_background
    from workflows.refusals import STORE_TIMEOUT, run_store_activity, run_update_store_activity


FIRST_ACTION_WAIT = timedelta(minutes=10)


@workflow.defn(name="MemberWorkflow")
class MemberWorkflow:
    @workflow.init
    def __init__(self, inp: MemberInput) -> None:
        # Read here, before any update handler runs (update-with-start delivers one at once).
        self._inp = inp
        self._member_id = inp.member_id
        self._lock = asyncio.Lock()
        self._pending: EmailChangeIssued | None = None
        self._cancelled = False
        self._mail_tasks: list[asyncio.Task[None]] = []
        self._actions = 0  # updates accepted by this run

    @workflow.run
    async def run(self, inp: MemberInput) -> None:
        # Started for an action (update-with-start): wait for it before looking for work.
        # A start without one (never by the API) ends after a while rather than linger.
        try:
            await workflow.wait_condition(lambda: self._actions > 0, timeout=FIRST_ACTION_WAIT)
        except TimeoutError:
            return
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            pending = self._pending
            if pending is None:
                # Mails may take a while; an action that arrives meanwhile is served
                # by this run, not cut off by its end.
                await asyncio.gather(*self._mail_tasks)
                # an action served meanwhile may have started mails of its own
                if (
                    workflow.all_handlers_finished()
                    and self._pending is None
                    and all(task.done() for task in self._mail_tasks)
                ):
                    break
                continue
            left = pending.expires_at - workflow.now()
            try:
                await workflow.wait_condition(
                    lambda waited=pending: self._pending is not waited,  # type: ignore[misc]
                    timeout=max(left.total_seconds(), 0.001),
                )
            except TimeoutError:
                async with self._lock:
                    if self._pending is pending:
                        await run_store_activity(
                            MemberActivities.expire_email_change,
                            ExpireEmailChangeInput(change_id=pending.change_id, at=workflow.now()),
                        )
                        self._pending = None

    # ---- updates ---------------------------------------------------------------------

    @workflow.update
    async def request_email_change(self, req: EmailChangeRequest) -> EmailChangeIssued:
        self._actions += 1
        async with self._lock:
            self._require_member()
            now = workflow.now()
            issued = await run_update_store_activity(
                MemberActivities.issue_email_change,
                IssueEmailChangeInput(
                    member_id=self._member_id,
                    change_id=req.change_id,
                    requested_at=now,
                    expires_at=now + self._inp.policy.link_ttl,
                ),
            )
            self._pending = issued
            return issued

    @request_email_change.validator
    def validate_request_email_change(self, req: EmailChangeRequest) -> None:
        self._require_member()

    @workflow.update
    async def confirm_email_change(self, req: ConfirmEmailChange) -> EmailChanged:
        self._actions += 1
        async with self._lock:
            self._require_member()
            changed = await run_update_store_activity(
                MemberActivities.apply_email_change,
                ApplyEmailChangeInput(
                    member_id=self._member_id,
                    change_id=req.change_id,
                    token_sha256=req.token_sha256,
                    at=workflow.now(),
                ),
            )
            if self._pending is not None and self._pending.change_id == req.change_id:
                self._pending = None
            context = {"changed_at": format_jst(changed.changed_at)}
            key = f"member-email-change:{req.change_id}"
            self._mail(
                MailRequest(
                    key=f"{key}:changed",
                    kind=MailKind.MEMBER_EMAIL_CHANGED,
                    email_change_id=req.change_id,
                    context=context,
                )
            )
            self._mail(
                MailRequest(
                    key=f"{key}:notice",
                    kind=MailKind.MEMBER_EMAIL_CHANGED_NOTICE,
                    email_change_id=req.change_id,
                    to_old_address=True,
                    context=context,
                )
            )
            return changed

    @confirm_email_change.validator
    def validate_confirm_email_change(self, req: ConfirmEmailChange) -> None:
        self._require_member()

    @workflow.update
    async def cancel_membership(self) -> MembershipCancelled:
        self._actions += 1
        async with self._lock:
            self._require_member()
            cancelled = await run_update_store_activity(
                MemberActivities.cancel_membership,
                CancelMembershipInput(member_id=self._member_id, at=workflow.now()),
            )
            self._cancelled = True
            self._pending = None
            self._mail(
                MailRequest(
                    key=f"member-cancelled:{self._member_id}",
                    kind=MailKind.MEMBER_CANCELLED,
                    member_id=self._member_id,
                    context={"cancelled_at": format_jst(cancelled.cancelled_at)},
                )
            )
            return cancelled

    @cancel_membership.validator
    def validate_cancel_membership(self) -> None:
        self._require_member()

    # ---- helpers -----------------------------------------------------------------------

    def _require_member(self) -> None:
        if self._cancelled:
            code = ErrorCode.MEMBER_CANCELLED
            raise ApplicationError(message_for(code), type=code.value, non_retryable=True)

    def _mail(self, request: MailRequest) -> None:
        send_in_background(self._mail_tasks, request, lambda: None, self._inp.mail_task_queue)


def tell_points_member_in_background(
    tasks: list[asyncio.Task[None]],
    inp: CircleCancelledInput,
    on_trouble: Callable[[], None],
    mail_task_queue: str | None,
) -> None:
    """For the journey's 解約: mark the gateway's スマイルeポイント member (if any) suspended,
    then mail them (on ``mail_task_queue``), as a background task (the 解約 answers
    without waiting), with the mail's retry policy; the journey awaits ``tasks`` before
    it ends."""

    async def run() -> None:
        try:
            member_id = await workflow.execute_activity_method(
                EnrollmentActivities.mark_points_member_suspended,
                inp,
                start_to_close_timeout=STORE_TIMEOUT,
                schedule_to_close_timeout=MAIL_GIVE_UP_AFTER,
                retry_policy=MAIL_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("points member not marked: %s", type(err.cause).__name__)
            on_trouble()
            return
        if member_id is None:
            return
        # In this same task, not a task of its own: the journey awaits the tasks it had
        # when it ended, so a mail started from here would be left behind.
        try:
            await workflow.execute_activity_method(
                MailActivities.send_mail,
                MailRequest(
                    key=f"{inp.key}:points-member",
                    kind=MailKind.MEMBER_CIRCLE_CANCELLED,
                    member_id=member_id,
                    context={"gateway_id": inp.gateway_id, "cancelled_at": format_jst(inp.at)},
                ),
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=MAIL_GIVE_UP_AFTER,
                retry_policy=MAIL_RETRY,
                task_queue=mail_task_queue,
            )
        except ActivityError as err:
            workflow.logger.warning("points member not told: %s", type(err.cause).__name__)
            on_trouble()

    tasks.append(asyncio.create_task(run()))
