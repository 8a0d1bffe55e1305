"""EnrollmentWorkflow: one customer's circle journey, from monitoring account to enrolled.

Workflow ID: ``enrollment-<account id>`` (the account ID is an opaque UUID, never the
e-mail). Input: ``EnrollmentInput``; result: ``EnrollmentResult``.

Messages
- update ``give_consent(ConsentRequest) -> ConsentResult``: 同意する on the current terms.
- update ``decline() -> DeclineResult``: 同意しない; ends the journey as declined.
- update ``apply_gateway(ApplyRequest) -> ApplicationReceipt``: 申込確定 for one gateway.
- update ``cancel_application(CancelRequest) -> CancelReceipt``: 解約; the journey ends as
  withdrawn when no active application is left.
- signal ``points_registered(PointsRegistered)``: the points signup joined; → enrolled.
- signal ``gateway_changed(GatewayChanged)``: the monitoring system changed a gateway (the
  store has it already); eligibility is checked again, the customer is mailed about an
  applied gateway that changed, and one no longer eligible while applied flags the journey
  for an operator. Idempotent by event ID.
- signal ``terms_revised(TermsDocument)``: a new version of the member terms
  (``cli.py terms-revised``). A journey waiting for consent moves to it and asks again by
  mail; one past consent gets a notice. Idempotent by version.
- update ``settle_start() -> StartSettled``: the customer's start (update-with-start);
  answers once the eligibility check is done and its status row written.
- query ``get_status() -> EnrollmentStatus``; the same status is written to the store's
  ``journey_status`` row after every change (patch ``status-in-store``), which is what
  ``GET /v1/journey`` reads; an update answers once its row is written.
- update ``operator_action(OperatorRequest) -> OperatorOutcome`` (``domain/operators.py``):
  resend the invitation or reminder, extend (the reminder schedule starts again now),
  revive a dormant journey (a reminder now, then the schedule), re-check eligibility,
  cancel (before any active application; the customer is mailed), clear the
  needs-operator flag. The validator refuses what the state tells (wrong stage, closed,
  not flagged, not dormant), so a refusal leaves nothing in history.

Long life: while it waits, the journey continues as new when the server suggests it (or
its history reaches ``EnrollmentInput.continue_as_new_after_events``), and once right after
it enters ``enrolled`` (the years it lives enrolled start from a short history), after its
handlers and mails have finished, carrying ``CarriedState``. Versioning:
docs/VERSIONING.md; the patches below are listed there.

Timers
- reminders while the customer stalls in a stage that awaits them (consent, application,
  points signup): at the configured delays after the stage was entered, deferred out of the
  JST quiet hours, capped; after the last one the journey is dormant and flagged for an
  operator (``EcoNeedsOperator``), and any customer action revives it.

Every update validator checks what the workflow's own state can tell (stage, terms version,
known gateways), so an obviously wrong request is refused without touching history; the
store has the last word inside the handler, through an activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.enrollment import EnrollmentActivities
    from domain import search_attributes as sa
    from domain.enrollment import (
        ApplicationReceipt,
        ApplicationState,
        ApplyRequest,
        CancelApplicationInput,
        CancelReceipt,
        CancelRequest,
        CarriedState,
        ConsentRequest,
        ConsentResult,
        DeclineResult,
        EligibilityResult,
        EnrollmentInput,
        EnrollmentResult,
        EnrollmentStatus,
        GatewayChanged,
        GatewayEventKind,
        GatewayView,
        IneligibleReason,
        PointsRegistered,
        PublishStatusInput,
        RecordApplicationInput,
        RecordConsentInput,
        Stage,
        StartSettled,
        next_reminder_at,
    )
    from domain.errors import ErrorCode
    from domain.jst import format_jst
    from domain.mail import MailKind, MailRequest
    from domain.member import CircleCancelledInput
    from domain.operators import OperatorAction, OperatorOutcome, OperatorRequest
    from domain.terms import TermsDocument
    from workflows import metrics
    from workflows.mail import send_in_background
    from workflows.member import tell_points_member_in_background
    from workflows.refusals import (
        LOCAL_ACTIVITY_FAILURES,
        LOCAL_STORE_RETRY,
        LOCAL_STORE_TIMEOUT,
        PATCH_LOCAL_STORE_WRITES,
        STORE_RETRY,
        STORE_TIMEOUT,
        refusal,
        run_update_store_activity,
    )


InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

ELIGIBILITY_RETRY_AFTER = timedelta(hours=1)
APPLYING_STAGES = (Stage.AWAITING_APPLICATION, Stage.AWAITING_POINTS_SIGNUP, Stage.ENROLLED)

# Patches (docs/VERSIONING.md). Mail and store request keys carry the journey's first run
# ID, so a journey started again after 解約 sends its own invitation.
PATCH_RUN_SCOPED_KEYS = "run-scoped-keys"
# The journey continues as new while it waits.
PATCH_CONTINUE_AS_NEW = "continue-as-new"
# The journey publishes its status to the store (GET /v1/journey reads it there).
PATCH_STATUS_IN_STORE = "status-in-store"
# The status row is written by the update's own store write (one local activity, not
# two, before the update answers).
PATCH_STATUS_WITH_WRITE = "status-with-write"
# A new journey publishes its first status (row and search attributes) once its
# eligibility check is done, not also while it checks (one local activity less per start).
PATCH_FIRST_STATUS_AFTER_CHECK = "first-status-after-check"
# What the status shows is read from these (a prediction changes them, then restores them).
STATUS_FIELDS = (
    "_stage",
    "_stage_entered_at",
    "_schedule_from",
    "_reminders_sent",
    "_dormant",
    "_enrolled_here",
    "_gateways",
    "_points_gateway",
    "_terms",
)
# A failed status write is tried again after this long (the store was down).
STATUS_RETRY_AFTER = timedelta(minutes=1)
# ...and once right after it enters enrolled in a run.
PATCH_CONTINUE_AFTER_ENROLLMENT = "continue-after-enrollment"
# How many monitoring-system event IDs a journey remembers (and carries).
GATEWAY_EVENTS_KEPT = 50


@workflow.defn
class EnrollmentWorkflow:
    @workflow.init
    def __init__(self, inp: EnrollmentInput) -> None:
        # State is set here, not in run(): an update or signal may arrive first.
        self._inp = inp
        self._stage = Stage.CHECKING
        self._stage_entered_at = workflow.now()
        self._ineligible_reason: IneligibleReason | None = None
        self._gateways: list[GatewayView] = []
        self._reminders_sent = 0
        self._dormant = False
        self._mail_trouble = False
        self._store_trouble = False
        self._points_gateway: str | None = None
        # Reminders count from here: the stage's entry, or an operator's extend / revive.
        self._schedule_from = self._stage_entered_at
        self._schedule_version = 0  # bumped when an operator moves the schedule
        self._flag_cleared = False  # an operator saw the flag (until it is raised again)
        self._last_mail = ""  # "<kind> at <time>", for the current details
        self._lock = asyncio.Lock()
        self._mail_tasks: list[asyncio.Task[None]] = []
        # The terms the customer is asked about: the input's, until a consent brings the
        # version the API serves now (a revision while the journey waited).
        self._terms = inp.circle_terms
        self._run_scoped_keys = False
        # Set when replaying a history recorded before continue-as-new existed reaches a
        # point where it would now continue: that run goes on as it did.
        self._continue_declined = False
        # An applied gateway no longer eligible after a monitoring-system event.
        self._gateway_trouble = False
        self._gateway_events: list[str] = []
        # The status row in the store: every _publish() makes a newer status; a writer
        # task writes the newest (a local activity); updates answer once it is written.
        self._status_in_store = False
        self._status_seq = 0
        self._status_saved = 0
        self._status_failing = False
        self._status_task: asyncio.Task[None] | None = None
        # Entered ``enrolled`` in this run (not carried in): the journey then continues as
        # new once, so the years it lives enrolled start from a short history.
        self._enrolled_here = False
        if inp.carried is not None:
            self._restore(inp.carried)

    @workflow.run
    async def run(self, inp: EnrollmentInput) -> EnrollmentResult:
        if inp.carried is None:
            self._run_scoped_keys = workflow.patched(PATCH_RUN_SCOPED_KEYS)
        if workflow.patched(PATCH_STATUS_IN_STORE):
            self._status_in_store = True
            self._status_task = asyncio.create_task(self._keep_status_published())
        if inp.carried is None:
            if not workflow.patched(PATCH_FIRST_STATUS_AFTER_CHECK):
                self._publish()
            result = await self._check_eligibility()
            self._gateways = result.gateways
            if not result.eligible:
                self._ineligible_reason = result.reason
                self._enter(Stage.INELIGIBLE)
                # The start's settle_start answers with this stage before the run ends.
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._close_status()
                return self._finish_result()
            self._enter(Stage.AWAITING_CONSENT)
            self._mail(MailKind.INVITATION, "invitation", {})
        else:
            self._publish()
        while not self._stage.is_final:
            await self._follow_up(self._stage)
            if self._continue_due() and not self._stage.is_final:
                if self._enrolled_here:
                    self._enrolled_here = False  # once, whatever the answer below
                    if not workflow.patched(PATCH_CONTINUE_AFTER_ENROLLMENT):
                        # Recorded before this rule: the run went on, and may still
                        # continue later when the server suggests it.
                        continue
                if not workflow.patched(PATCH_CONTINUE_AS_NEW):
                    self._continue_declined = True
                    continue
                await self._drain()
                if not self._stage.is_final:
                    workflow.continue_as_new(self._next_input())
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._mail_tasks)
        await self._close_status()
        return self._finish_result()

    # ---- updates -------------------------------------------------------------------

    @workflow.update
    async def give_consent(self, req: ConsentRequest) -> ConsentResult:
        if req.current_terms is not None and self._stage == Stage.AWAITING_CONSENT:
            # A revision while the journey waited: the consent is for the version the
            # customer was shown, and the ledger records that one.
            self._terms = req.current_terms
        now = await self._decide("agreed", "consent", req.channel, Stage.AWAITING_APPLICATION)
        return ConsentResult(stage=self._stage, consented_at=now)

    @give_consent.validator
    def validate_give_consent(self, req: ConsentRequest) -> None:
        self._require_stage(Stage.AWAITING_CONSENT)
        asked = req.current_terms or self._terms
        if req.terms_version != asked.version:
            raise refusal(ErrorCode.TERMS_VERSION_OUTDATED)

    @workflow.update
    async def decline(self) -> DeclineResult:
        now = await self._decide("declined", "decline", "web", Stage.DECLINED)
        return DeclineResult(stage=self._stage, declined_at=now)

    @decline.validator
    def validate_decline(self) -> None:
        self._require_stage(Stage.AWAITING_CONSENT)

    @workflow.update
    async def apply_gateway(self, req: ApplyRequest) -> ApplicationReceipt:
        async with self._lock:
            self._require_stage(*APPLYING_STAGES)
            now = workflow.now()

            def applied() -> None:  # what the journey shows once the store recorded it
                self._gateways = [
                    g.model_copy(
                        update={
                            "application": ApplicationState.ACTIVE,
                            "applied_at": now,
                            "cancelled_at": None,
                        }
                    )
                    if g.gateway_id == req.gateway_id
                    else g
                    for g in self._gateways
                ]
                if self._stage == Stage.AWAITING_APPLICATION:
                    self._set_stage(
                        Stage.ENROLLED if self._points_gateway else Stage.AWAITING_POINTS_SIGNUP,
                        now,
                    )

            status = self._status_after(applied)
            recorded = await self._write_carrying(
                status,
                EnrollmentActivities.record_application,
                RecordApplicationInput(
                    key=self._request_key("apply"),
                    account_id=self._inp.account_id,
                    gateway_id=req.gateway_id,
                    applied_at=now,
                    status=status,
                ),
            )
            self._gateways = recorded.gateways
            if recorded.points_member_gateway_id and self._points_gateway is None:
                # Re-joining after 解約: the household is still a points member.
                self._points_gateway = recorded.points_member_gateway_id
            receipt = ApplicationReceipt(
                gateway_id=recorded.gateway_id,
                pcs_serial=recorded.pcs_serial,
                applied_at=recorded.applied_at,
                points_signup_url=self._inp.points_signup_url,
            )
            self._mail(
                MailKind.APPLICATION_COMPLETE,
                f"application:{recorded.gateway_id}:{recorded.applied_at.isoformat()}",
                {
                    "applied_at": receipt.applied_at_jst,
                    "gateway_id": receipt.gateway_id,
                    "pcs_serial": receipt.pcs_serial,
                },
            )
            if self._stage == Stage.AWAITING_APPLICATION:
                self._enter(
                    Stage.ENROLLED if self._points_gateway else Stage.AWAITING_POINTS_SIGNUP,
                    now if status else None,  # as in _decide
                )
            else:
                self._status_changed()  # the gateways changed
            self._status_written(status, recorded.status_written)
            await self._status_published()
            return receipt

    @apply_gateway.validator
    def validate_apply_gateway(self, req: ApplyRequest) -> None:
        self._require_stage(*APPLYING_STAGES)
        known = self._gateway(req.gateway_id)
        if known is None:
            return  # the registry may know a gateway added since; the store decides
        if known.application == ApplicationState.ACTIVE:
            raise refusal(ErrorCode.GATEWAY_ALREADY_APPLIED)
        if not known.eligible:
            raise refusal(ErrorCode.GATEWAY_NOT_ELIGIBLE)

    @workflow.update
    async def cancel_application(self, req: CancelRequest) -> CancelReceipt:
        async with self._lock:
            self._require_active_application(req.gateway_id)
            now = workflow.now()

            def cancelled() -> None:  # what the journey shows once the store recorded it
                self._gateways = [
                    g.model_copy(
                        update={"application": ApplicationState.CANCELLED, "cancelled_at": now}
                    )
                    if g.gateway_id == req.gateway_id
                    else g
                    for g in self._gateways
                ]
                if not any(g.application == ApplicationState.ACTIVE for g in self._gateways):
                    self._set_stage(Stage.WITHDRAWN, now)

            status = self._status_after(cancelled)
            cancel = CancelApplicationInput(
                key=self._request_key("cancel"),
                account_id=self._inp.account_id,
                gateway_id=req.gateway_id,
                cancelled_at=now,
                status=status,
            )
            row_written = False
            if status is None:
                self._gateways = await run_update_store_activity(
                    EnrollmentActivities.cancel_application, cancel
                )
            else:
                done = await self._write_carrying(
                    status, EnrollmentActivities.cancel_application_carrying_status, cancel
                )
                self._gateways, row_written = done.gateways, done.status_written
            gateway = self._gateway(req.gateway_id)
            self._mail(
                MailKind.APPLICATION_CANCELLED,
                f"cancellation:{req.gateway_id}:{now.isoformat()}",
                {
                    "cancelled_at": format_jst(now),
                    "gateway_id": req.gateway_id,
                    "pcs_serial": gateway.pcs_serial if gateway else "",
                },
            )
            if workflow.patched("points-member-circle-cancel"):
                # The gateway's スマイルeポイント member (if any) is suspended and told
                # (rule: README "Circle 解約 and the points membership").
                tell_points_member_in_background(
                    self._mail_tasks,
                    CircleCancelledInput(
                        key=f"{workflow.info().workflow_id}:cancellation:{req.gateway_id}:"
                        f"{now.isoformat()}",
                        account_id=self._inp.account_id,
                        gateway_id=req.gateway_id,
                        at=now,
                    ),
                    self._mail_failed,
                    self._inp.mail_task_queue,
                )
            if not any(g.application == ApplicationState.ACTIVE for g in self._gateways):
                self._enter(Stage.WITHDRAWN, now if status else None)  # as in _decide
            else:
                self._status_changed()  # the gateways changed
            self._status_written(status, row_written)
            await self._status_published()
            return CancelReceipt(gateway_id=req.gateway_id, cancelled_at=now, stage=self._stage)

    @cancel_application.validator
    def validate_cancel_application(self, req: CancelRequest) -> None:
        self._require_active_application(req.gateway_id)

    # ---- signals and queries -------------------------------------------------------

    @workflow.signal
    def points_registered(self, event: PointsRegistered) -> None:
        self._points_gateway = event.gateway_id
        if self._stage == Stage.AWAITING_POINTS_SIGNUP:
            self._enter(Stage.ENROLLED)
        else:
            self._status_changed()  # the status names the member's gateway

    @workflow.query
    def get_status(self) -> EnrollmentStatus:
        return EnrollmentStatus(
            stage=self._stage,
            stage_entered_at=self._stage_entered_at,
            ineligible_reason=self._ineligible_reason,
            gateways=self._gateways,
            reminders_sent=self._reminders_sent,
            next_reminder_at=self._next_reminder_at(),
            dormant=self._dormant,
            circle_terms_version=self._terms.version,
            points_member_gateway_id=self._points_gateway,
        )

    # ---- the eligibility check -----------------------------------------------------

    async def _check_eligibility(self) -> EligibilityResult:
        """Bounded retries; if they run out (the store is down for long), the journey is
        flagged for an operator and tries again an hour later, so it never fails."""
        if workflow.patched(PATCH_LOCAL_STORE_WRITES):
            # The customer's start waits for this answer: first as a local activity (the
            # start settles in one workflow task), then the long way below.
            try:
                quick: EligibilityResult = await workflow.execute_local_activity_method(
                    EnrollmentActivities.check_eligibility,
                    self._inp.account_id,
                    start_to_close_timeout=LOCAL_STORE_TIMEOUT,
                    schedule_to_close_timeout=LOCAL_STORE_TIMEOUT * 3,
                    retry_policy=LOCAL_STORE_RETRY,
                )
                return quick
            except LOCAL_ACTIVITY_FAILURES as err:
                workflow.logger.warning("eligibility check failed: %s", type(err).__name__)
        while True:
            try:
                result: EligibilityResult = await workflow.execute_activity_method(
                    EnrollmentActivities.check_eligibility,
                    self._inp.account_id,
                    start_to_close_timeout=STORE_TIMEOUT,
                    retry_policy=STORE_RETRY,
                    summary="check eligibility",
                )
            except ActivityError as err:
                workflow.logger.warning("eligibility check failed: %s", type(err.cause).__name__)
                self._store_trouble = True
                self._publish()
                await workflow.sleep(ELIGIBILITY_RETRY_AFTER)
                continue
            if self._store_trouble:
                self._store_trouble = False
                self._publish()
            return result

    # ---- the reminder loop ---------------------------------------------------------

    async def _follow_up(self, stage: Stage) -> None:
        """Wait for the stage to change, reminding the customer while it does not.

        An operator's extend or revive moves the schedule: the wait ends and the next
        reminder is computed again (the same commands as before when nobody does). It also
        returns when the history is long enough to continue as new.
        """

        def left() -> bool:
            return self._stage != stage or self._continue_due()

        while not left():
            due = self._next_reminder_at()
            woken = self._woken_by(stage, self._schedule_version)
            if due is None:
                await workflow.wait_condition(woken)
                continue
            delay = due - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(
                        woken,
                        timeout=delay,
                        timeout_summary=(
                            f"reminder {self._reminders_sent + 1} of "
                            f"{len(self._inp.reminders.delays)} at {due.isoformat()}"
                        ),
                    )
                    continue
                except TimeoutError:
                    pass
            await self._remind(stage)

    def _woken_by(self, stage: Stage, seen: int) -> Callable[[], bool]:
        return lambda: (
            self._stage != stage or self._schedule_version != seen or self._continue_due()
        )

    def _next_reminder_at(self) -> datetime | None:
        if self._stage.awaited is None:
            return None
        return next_reminder_at(
            self._schedule_from,
            self._reminders_sent,
            self._inp.reminders,
            self._inp.quiet_hours,
        )

    async def _remind(self, stage: Stage) -> None:
        number = self._reminders_sent + 1
        metrics.reminder_sent(stage.value)
        # Anchored at the schedule's start: a schedule an operator restarted mails anew.
        key = f"reminder:{stage.value}:{self._schedule_from.isoformat()}:{number}"
        awaited = stage.awaited.value if stage.awaited else ""
        self._mail(MailKind.REMINDER, key, {"awaited": awaited, "reminder_number": str(number)})
        self._reminders_sent = number
        if number >= len(self._inp.reminders.delays):
            self._dormant = True
            self._flag_cleared = False
            workflow.logger.info("journey dormant after %d reminders at %s", number, stage)
        self._publish()

    # ---- helpers -------------------------------------------------------------------

    async def _decide(
        self, decision: Literal["agreed", "declined"], what: str, channel: str, then: Stage
    ) -> datetime:
        """同意する / 同意しない: record the decision on the current terms, then move on."""
        async with self._lock:
            self._require_stage(Stage.AWAITING_CONSENT)
            now = workflow.now()
            status = self._status_after(lambda: self._set_stage(then, now))
            written = await self._write_carrying(
                status,
                EnrollmentActivities.record_consent,
                RecordConsentInput(
                    key=self._request_key(what),
                    account_id=self._inp.account_id,
                    terms=self._terms,
                    decision=decision,
                    decided_at=now,
                    channel=channel,
                    status=status,
                ),
            )
            # Since status-with-write the stage is entered at the decision's time (the
            # predicted row's); before, at the time the write came back.
            self._enter(then, now if status else None)
            self._status_written(status, bool(written))
            await self._status_published()
            return now

    def _enter(self, stage: Stage, at: datetime | None = None) -> None:
        # replay-safe: the meter records nothing while a history replays
        metrics.stage_entered(
            stage.value, self._stage.value, workflow.now() - self._stage_entered_at
        )
        self._set_stage(stage, at)
        self._publish()

    def _set_stage(self, stage: Stage, at: datetime | None = None) -> None:
        """What entering a stage (now, or ``at``: the time an update's decision was
        made) does to the state; ``_enter`` also tells the world."""
        self._stage = stage
        # A decision's time, unless the journey entered its stage later (a signal while
        # the decision's write ran): stages are never entered back in time.
        self._stage_entered_at = (
            at if at is not None and at >= self._stage_entered_at else workflow.now()
        )
        self._schedule_from = self._stage_entered_at
        self._reminders_sent = 0
        self._dormant = False
        self._enrolled_here = stage == Stage.ENROLLED

    def _publish(self) -> None:
        self._status_changed()
        workflow.upsert_search_attributes(
            [
                sa.STAGE.value_set(self._stage.value),
                sa.STAGE_ENTERED_AT.value_set(self._stage_entered_at),
                sa.REMINDER_COUNT.value_set(self._reminders_sent),
                sa.NEEDS_OPERATOR.value_set(self._needs_operator()),
            ]
        )
        self._describe()

    def _needs_operator(self) -> bool:
        return (
            (self._dormant and not self._flag_cleared)
            or self._mail_trouble
            or self._store_trouble
            or self._gateway_trouble
        )

    def _describe(self) -> None:
        """The UI's one screen (current details): where, since when, what was mailed, what
        the workflow waits for. Codes and times only, never personal data (the details are
        a query answer, encrypted by the codec like every payload, but kept clean anyway)."""
        awaited = self._stage.awaited
        due = self._next_reminder_at()
        lines = [
            f"stage **{self._stage.value}** since {self._stage_entered_at.isoformat()}; "
            f"reminders sent: {self._reminders_sent}"
            + ("; dormant" if self._dormant else "")
            + ("; a mail could not be delivered" if self._mail_trouble else "")
            + ("; the eligibility check keeps failing" if self._store_trouble else "")
            + ("; an applied gateway is no longer eligible" if self._gateway_trouble else ""),
            f"waits for: {awaited.value if awaited else 'nothing from the customer'}"
            + (f"; next reminder {due.isoformat()}" if due else ""),
            f"last mail: {self._last_mail or 'none'}",
        ]
        if self._schedule_from != self._stage_entered_at:
            lines.append(f"reminder schedule restarted by an operator at {self._schedule_from}")
        if self._needs_operator():
            lines.append("**needs an operator**")
        workflow.set_current_details("\n\n".join(lines))

    def _finish_result(self) -> EnrollmentResult:
        return EnrollmentResult(stage=self._stage, ineligible_reason=self._ineligible_reason)

    def _require_stage(self, *stages: Stage) -> None:
        if self._stage in stages:
            return
        raise refusal(ErrorCode.JOURNEY_CLOSED if self._stage.is_final else ErrorCode.WRONG_STAGE)

    def _require_active_application(self, gateway_id: str) -> None:
        if self._stage.is_final:
            raise refusal(ErrorCode.JOURNEY_CLOSED)
        gateway = self._gateway(gateway_id)
        if gateway is None or gateway.application != ApplicationState.ACTIVE:
            raise refusal(ErrorCode.APPLICATION_NOT_FOUND)

    def _gateway(self, gateway_id: str) -> GatewayView | None:
        return next((g for g in self._gateways if g.gateway_id == gateway_id), None)

    def _request_key(self, what: str) -> str:
        info = workflow.current_update_info()
        update_id = info.id if info else "run"
        return f"{self._key_prefix()}:{what}:{update_id}"

    def _key_prefix(self) -> str:
        """The workflow ID, and for journeys started since ``PATCH_RUN_SCOPED_KEYS`` the
        first run's ID: a journey started again after it ended (the same workflow ID, and
        the API's update IDs may repeat) must not find the old journey's mails and ledger
        rows sent or recorded. Continue-as-new keeps the first run's ID, so the keys of one
        journey stay the same across its runs."""
        info = workflow.info()
        if self._run_scoped_keys:
            return f"{info.workflow_id}:{info.first_execution_run_id}"
        return info.workflow_id

    def _mail(self, kind: MailKind, key: str, context: dict[str, str]) -> None:
        """Send a mail in the background: an update answers without waiting for SMTP."""
        request = MailRequest(
            key=f"{self._key_prefix()}:{key}",
            kind=kind,
            account_id=self._inp.account_id,
            context=context,
        )
        send_in_background(self._mail_tasks, request, self._mail_failed, self._inp.mail_task_queue)
        self._last_mail = f"{kind.value} at {workflow.now().isoformat()}"
        self._describe()

    def _mail_failed(self) -> None:
        self._mail_trouble = True
        self._publish()

    # ---- operators (appended: the handlers above keep their order) --------------------

    @workflow.update
    async def operator_action(self, req: OperatorRequest) -> OperatorOutcome:
        async with self._lock:
            self._check_operator(req)
            before = self._stage.value
            detail = await self._operate(req)
            self._publish()
            await self._status_published()
            return OperatorOutcome(
                action=req.action,
                before_stage=before,
                after_stage=self._stage.value,
                at=workflow.now(),
                detail=detail,
            )

    @operator_action.validator
    def validate_operator_action(self, req: OperatorRequest) -> None:
        self._check_operator(req)

    def _check_operator(self, req: OperatorRequest) -> None:
        if self._stage.is_final:
            raise refusal(ErrorCode.JOURNEY_CLOSED)
        action = req.action
        if action == OperatorAction.CLEAR_FLAG:
            if not self._needs_operator():
                raise refusal(ErrorCode.NOT_FLAGGED)
        elif action == OperatorAction.RECHECK_ELIGIBILITY:
            self._require_stage(*(s for s in Stage if s.awaited or s == Stage.ENROLLED))
        elif action == OperatorAction.CANCEL:
            # With an active application the customer's 解約 (or the operator's, on their
            # behalf, through the same route) is the way: it ends the application too.
            self._require_stage(Stage.AWAITING_CONSENT, Stage.AWAITING_APPLICATION)
        else:  # resend, extend, revive: only where the customer is awaited
            if self._stage.awaited is None:
                raise refusal(ErrorCode.WRONG_STAGE)
            if action == OperatorAction.REVIVE and not self._dormant:
                raise refusal(ErrorCode.NOT_DORMANT)

    async def _operate(self, req: OperatorRequest) -> str:
        action = req.action
        key = self._request_key(f"operator-{action.value}")
        if action == OperatorAction.RESEND:
            return self._remail(key)
        if action in (OperatorAction.EXTEND, OperatorAction.REVIVE):
            # A revived customer hears from us now (the mail of where they stopped).
            mailed = self._remail(key) if action == OperatorAction.REVIVE else ""
            self._schedule_from = workflow.now()
            self._reminders_sent = 0
            self._dormant = False
            self._flag_cleared = False
            self._schedule_version += 1
            due = self._next_reminder_at()
            return ";".join(
                filter(None, [mailed, f"next_reminder={due.isoformat() if due else ''}"])
            )
        if action == OperatorAction.RECHECK_ELIGIBILITY:
            result = await workflow.execute_activity_method(
                EnrollmentActivities.check_eligibility,
                self._inp.account_id,
                start_to_close_timeout=STORE_TIMEOUT,
                summary="operator: check eligibility again",
            )
            self._gateways = result.gateways
            reason = result.reason.value if result.reason else ""
            return "eligible" if result.eligible else f"not_eligible:{reason}"
        if action == OperatorAction.CANCEL:
            self._mail(
                MailKind.JOURNEY_CANCELLED,
                key.removeprefix(f"{workflow.info().workflow_id}:"),
                {"cancelled_at": format_jst(workflow.now())},
            )
            self._enter(Stage.CANCELLED)
            return MailKind.JOURNEY_CANCELLED.value
        self._mail_trouble = False
        self._flag_cleared = True
        return "flag_cleared"

    def _remail(self, key: str) -> str:
        """The current mail again: the invitation while consent is awaited, else the
        reminder of the awaited step (not counted in the schedule)."""
        own_key = key.removeprefix(f"{workflow.info().workflow_id}:")
        if self._stage == Stage.AWAITING_CONSENT and self._reminders_sent == 0:
            self._mail(MailKind.INVITATION, own_key, {})
            return MailKind.INVITATION.value
        awaited = self._stage.awaited.value if self._stage.awaited else ""
        number = str(self._reminders_sent + 1)
        self._mail(MailKind.REMINDER, own_key, {"awaited": awaited, "reminder_number": number})
        return MailKind.REMINDER.value

    # ---- the status row in the store ------------------------------------------------

    async def _keep_status_published(self) -> None:
        """Write the newest status to the store whenever ``_publish()`` made one.

        A write that fails after its bounded retries (the store is down) unblocks the
        updates waiting for it (they answer; the row is behind until the store is back)
        and is made again, with the status of then, a minute later."""
        while True:
            await workflow.wait_condition(lambda: self._status_seq > self._status_saved)
            seq = self._status_seq
            info = workflow.info()
            try:
                await workflow.execute_local_activity_method(
                    EnrollmentActivities.publish_status,
                    PublishStatusInput(
                        account_id=self._inp.account_id,
                        run_id=info.run_id,
                        seq=seq,
                        published_at=workflow.now(),
                        status=self.get_status(),
                    ),
                    start_to_close_timeout=LOCAL_STORE_TIMEOUT,
                    schedule_to_close_timeout=LOCAL_STORE_TIMEOUT * 3,
                    retry_policy=LOCAL_STORE_RETRY,
                )
            except LOCAL_ACTIVITY_FAILURES as err:
                workflow.logger.warning("status not published: %s", type(err).__name__)
                self._status_failing = True  # updates answer without waiting for the row
                await workflow.sleep(STATUS_RETRY_AFTER)
                continue
            self._status_saved = max(self._status_saved, seq)
            self._status_failing = False

    async def _close_status(self) -> None:
        """Before the run completes: the last status written, the writer stopped (no
        command may follow the run's completion)."""
        await self._status_published()
        if self._status_task is not None:
            self._status_task.cancel()

    def _status_after(self, change: Callable[[], None]) -> PublishStatusInput | None:
        """Patch ``status-with-write``: the status row as it will be once the update's
        store write succeeded and ``change`` (what the update then does to the state) is
        made, for that write to carry. Predicted by making the change, reading the status
        and putting the state back (nothing else runs meanwhile). None before the patch,
        and while the row is behind (a write pending, or the store refusing it): the
        writer task writes it then, as before. The activity writes the row only after
        the write, and a row it cannot write never fails the write (it says so, and
        ``_status_written`` leaves the row to the writer)."""
        if not self._status_in_store or self._status_saved != self._status_seq:
            return None
        if not workflow.patched(PATCH_STATUS_WITH_WRITE):
            return None
        kept = {name: getattr(self, name) for name in STATUS_FIELDS}
        try:
            change()
            status = self.get_status()
        finally:
            for name, value in kept.items():
                setattr(self, name, value)
        return PublishStatusInput(
            account_id=self._inp.account_id,
            run_id=workflow.info().run_id,
            seq=self._status_seq + 1,
            published_at=workflow.now(),
            status=status,
        )

    async def _write_carrying(
        self,
        status: PublishStatusInput | None,
        activity: Callable[[Any, InputT], ResultT],
        inp: InputT,
    ) -> ResultT:
        """The update's store write (``run_update_store_activity``), carrying ``status``.
        A write that failed may still have written the row (an attempt that wrote, then
        timed out): the workflow's status is then made newer than it, and the writer
        task writes the row as the workflow shows it."""
        try:
            result: ResultT = await run_update_store_activity(activity, inp)
        except ApplicationError:
            if status is not None:
                self._status_seq = max(self._status_seq, status.seq)
                self._status_changed()
            raise
        return result

    def _status_written(self, written: PublishStatusInput | None, row_written: bool) -> None:
        """After an update's write that carried its status row (``_status_after``) and
        its change of state: when the row shows what the workflow shows now (the
        prediction held, and nothing else changed the status meanwhile, so this is the
        one change since), the row is up to date. Otherwise (the store answered other
        than predicted, a signal came in between) the writer writes a row newer than it."""
        if written is None:
            return
        if row_written and self._status_seq == written.seq and self.get_status() == written.status:
            self._status_saved = max(self._status_saved, written.seq)
        else:
            self._status_changed()

    def _status_changed(self) -> None:
        """Something the status shows changed (and no search attribute did)."""
        self._status_seq += 1

    async def _status_published(self) -> None:
        """Wait until the store's row shows what the workflow shows now."""
        if self._status_in_store:
            seq = self._status_seq
            await workflow.wait_condition(lambda: self._status_saved >= seq or self._status_failing)

    # ---- continue-as-new -----------------------------------------------------------

    def _continue_due(self) -> bool:
        if self._continue_declined or self._stage.is_final:
            return False
        if self._enrolled_here:
            return True  # at least after enrollment: an enrolled journey lives for years
        info = workflow.info()
        cap = self._inp.continue_as_new_after_events
        return info.is_continue_as_new_suggested() or (
            cap is not None and info.get_current_history_length() >= cap
        )

    async def _drain(self) -> None:
        """Before continuing as new: every update answered, every mail finished, the
        status row written."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and all(t.done() for t in self._mail_tasks)
        )
        await asyncio.gather(*self._mail_tasks)
        self._mail_tasks.clear()
        await self._status_published()  # the next run's first row must be the newer one

    def _next_input(self) -> EnrollmentInput:
        return self._inp.model_copy(
            update={
                "circle_terms": self._terms,
                "carried": CarriedState(
                    stage=self._stage,
                    stage_entered_at=self._stage_entered_at,
                    reminders_sent=self._reminders_sent,
                    dormant=self._dormant,
                    mail_trouble=self._mail_trouble,
                    gateways=self._gateways,
                    points_gateway=self._points_gateway,
                    run_scoped_mail_keys=self._run_scoped_keys,
                    gateway_trouble=self._gateway_trouble,
                    gateway_events=self._gateway_events,
                    schedule_from=self._schedule_from,
                    flag_cleared=self._flag_cleared,
                ),
            }
        )

    def _restore(self, carried: CarriedState) -> None:
        self._stage = carried.stage
        self._stage_entered_at = carried.stage_entered_at
        self._reminders_sent = carried.reminders_sent
        self._dormant = carried.dormant
        self._mail_trouble = carried.mail_trouble
        self._gateways = carried.gateways
        self._points_gateway = carried.points_gateway
        self._run_scoped_keys = carried.run_scoped_mail_keys
        self._gateway_trouble = carried.gateway_trouble
        self._gateway_events = list(carried.gateway_events)
        self._schedule_from = carried.schedule_from or carried.stage_entered_at
        self._flag_cleared = carried.flag_cleared

    # ---- gateway changes from the monitoring system ----------------------------------

    @workflow.signal
    async def gateway_changed(self, event: GatewayChanged) -> None:
        if event.event_id in self._gateway_events:
            return
        # The last IDs are enough: the store refuses a repeated event before it is
        # signalled, so this only guards against a signal delivered twice.
        self._gateway_events = [*self._gateway_events[-(GATEWAY_EVENTS_KEPT - 1) :], event.event_id]
        async with self._lock:
            if self._stage.is_final or self._stage == Stage.CHECKING:
                return  # ended; or run() is about to read the registry anyway
            before = {g.gateway_id: g for g in self._gateways}
            result = await workflow.execute_activity_method(
                EnrollmentActivities.check_eligibility,
                self._inp.account_id,
                start_to_close_timeout=STORE_TIMEOUT,
            )
            self._gateways = result.gateways
            changed = self._gateway(event.gateway_id)
            was = before.get(event.gateway_id)
            self._gateway_trouble = any(
                g.application == ApplicationState.ACTIVE and not g.eligible for g in self._gateways
            )
            still_fine = changed is not None and (
                changed.application == ApplicationState.ACTIVE and changed.eligible
            )
            if (
                changed is None
                or was is None
                or was.application != ApplicationState.ACTIVE
                or still_fine
            ):
                self._publish()
                return  # no application of the customer's was touched
            self._mail(
                MailKind.GATEWAY_CHANGED,
                f"gateway-event:{event.event_id}",
                {
                    "change": (
                        GatewayEventKind.UNITS_CHANGED.value
                        if changed.application == ApplicationState.ACTIVE
                        else event.kind.value
                    ),
                    "gateway_id": event.gateway_id,
                    "new_gateway_id": event.new_gateway_id or "",
                },
            )
            self._publish()

    # ---- a revision of the member terms --------------------------------------------

    @workflow.signal
    def terms_revised(self, terms: TermsDocument) -> None:
        if terms.document != self._terms.document or terms.version == self._terms.version:
            return
        if self._stage.is_final or self._stage == Stage.CHECKING:
            return  # ended; or not yet invited (the invitation links the terms in force)
        audience = "consent" if self._stage == Stage.AWAITING_CONSENT else "member"
        self._terms = terms
        self._mail(
            MailKind.TERMS_REVISED,
            f"terms-revised:{terms.version}",
            {"version": terms.version, "url": terms.url, "audience": audience},
        )
        self._publish()

    @workflow.update
    async def settle_start(self) -> StartSettled:
        """The answer to the customer's start (``POST /v1/journey`` sends it with the
        start, as one update-with-start): the status once the eligibility check is done
        and the store's row shows it, so the next ``GET`` reads what this answered. No
        command of its own: it only waits."""
        fresh = self._stage == Stage.CHECKING
        await workflow.wait_condition(lambda: self._stage != Stage.CHECKING)
        await self._status_published()
        return StartSettled(status=self.get_status(), fresh=fresh)
