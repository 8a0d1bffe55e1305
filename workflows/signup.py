"""SignupWorkflow: one スマイルeポイント signup, from e-mail entry to member.

Workflow ID: ``signup-<signup id>`` (opaque; the e-mail is only in the store). Started by
the API with update-with-start of ``request_link``, so entering the same address again
reaches the same signup. Input: ``SignupInput``; result: ``SignupView``.

Messages
- update ``request_link() -> RequestLinkResult``: record a new link, valid for
  ``policy.link_ttl`` (a local
  store activity: its number comes from the store, its token is derived there) and
  answer; the mail goes out in a background activity (``send_link``), so the link is
  known here before the mail can arrive, and a slow or absent relay never holds the
  update. The previous link (and any session opened with it) dies. Cooldown and daily
  cap in the validator. For an address that is or was a member, mails what happened
  instead.
- update ``begin(BeginRequest) -> BeginResult``: STEP1, the first form submission; spends
  the token (opening the link spends nothing). Each link state has its own refusal:
  ``link_expired``, ``link_replaced``, ``link_used``, ``signup_completed``.
- updates ``present_document``, ``agree``, ``enter_gateway``, ``enter_customer``,
  ``register``: the later steps, each tied to the current link's session (``seq``).
- queries ``get_signup() -> SignupView`` (the confirmation view, password masked),
  ``link_state(token_sha256) -> LinkStatus`` and ``link_view(token_sha256) -> LinkView``
  (both, for the link page in one query); ``SignupView.needs_operator`` says a mail
  failed for good or a store write kept failing, as do the workflow's current details.
- knowing the two IDs is not enough (``domain/holder.py``, patch ``holder-confirmation``):
  ``enter_gateway`` counts wrong pairs (the signup locks after ``gateway_tries``; the
  store refuses a gateway with too many wrong pairs across signups) and, when the
  signup's e-mail is not the circle account's, asks the account holder to confirm;
  ``register`` waits for that (``holder_confirmation_pending``) and tells the holder of
  every registration. Update ``decide_holder(HolderDecision) -> HolderState`` is the
  holder's answer (a decline ends the signup); ``ask_holder_again(SessionRequest)``
  asks anew after an unanswered request expired.

- update ``operator_action(OperatorRequest) -> OperatorOutcome`` (``domain/operators.py``):
  resend (a new link by the ``request_link`` path, without the customer's cooldown and
  cap), extend (the current unused link valid ``link_ttl`` from now), cancel (the address
  is freed and told), clear the needs-operator flag.
- search attributes (patch ``operator-visibility``): ``EcoStage`` = ``signup_<status>``,
  ``EcoStageEnteredAt``, ``EcoReminderCount`` (links and reminders mailed),
  ``EcoNeedsOperator`` (a mail not delivered, or locked at STEP3).

Versioning: ``workflow.patched(LINK_RECORDED_THEN_MAILED)`` guards the link commands;
runs recorded before it keep the old ``issue_link`` activity (record and mail in one).
``workflow.patched(HOLDER_PATCH)`` guards STEP3 and register (see above).

Timers
- an unused link expires at its ``expires_at``: one "expired, start again" mail;
- an unanswered holder confirmation expires (``holder_confirmation_ttl``): the signup's
  address is told;
- a signup left idle gets one reminder, then is abandoned, which releases the e-mail
  reservation; so is an expired link never renewed.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.holder import HolderActivities
    from activities.signup import SignupActivities
    from domain import search_attributes as sa
    from domain.customer import CustomerInfo
    from domain.enrollment import PointsRegistered
    from domain.errors import ErrorCode
    from domain.holder import (
        AskHolderInput,
        CheckGatewayInput,
        GatewayCheck,
        GatewayOutcome,
        HolderAsked,
        HolderDecision,
        HolderMailInput,
        HolderState,
        RecordHolderDecisionInput,
        RegistrationNoticeInput,
    )
    from domain.ids import enrollment_workflow_id
    from domain.jst import defer_out_of_quiet_hours
    from domain.mail import MailKind, MailRequest
    from domain.operators import (
        SIGNUP_ACTIONS,
        OperatorAction,
        OperatorOutcome,
        OperatorRequest,
        signup_stage,
    )
    from domain.signup import (
        AgreeRequest,
        BeginRequest,
        BeginResult,
        CustomerEntry,
        GatewayEntry,
        GatewayMatch,
        HolderConfirmation,
        IssueLinkInput,
        LinkIssued,
        LinkStatus,
        LinkView,
        MatchGatewayInput,
        PresentDocument,
        RecordLinkInput,
        Registered,
        RegisterMemberInput,
        RegisterRequest,
        ReleaseSignupInput,
        RequestLinkResult,
        SendLinkInput,
        Service,
        SessionRequest,
        SignupInput,
        SignupStatus,
        SignupView,
    )
    from domain.terms import TermsDocument
    from workflows import metrics

    # Only its signal's name is used here (no code of it runs in this sandbox): passed
    # through, a signup's sandbox does not load the journey's module afresh for every
    # run (2.5 ms of CPU, bench/sandbox.py).
    from workflows.enrollment import EnrollmentWorkflow
    from workflows.mail import (
        mail_in_background,
        send_in_background,
    )
    from workflows.refusals import (
        PATCH_LOCAL_STORE_WRITES,
        refusal,
        run_local_store_activity,
        run_store_activity,
        run_update_store_activity,
    )

MailInputT = TypeVar("MailInputT")
MASK = "********"
# STEP3 checks the pair with limits and asks the circle account holder to confirm a
# stranger's address; register waits for it and tells the holder. Signups whose STEP3
# or register ran before this replay the old commands.
HOLDER_PATCH = "holder-confirmation"
# The link is recorded by a local activity and mailed by a background one (before: one
# activity recorded and mailed it inside the update).
LINK_RECORDED_THEN_MAILED = "link-recorded-then-mailed"
# The signup publishes the operators' search attributes; older runs replay without them.
VISIBILITY_PATCH = "operator-visibility"
# What each deadline's timer is called in the UI (timer summaries).
TIMER_SUMMARIES = {
    "_expire_link": "link expires",
    "_expire_holder": "holder confirmation expires",
    "_remind": "idle reminder",
    "_abandon": "abandoned",
}


# The type name predates the rename: running signups and recorded histories carry it.
@workflow.defn(name="PointSignupWorkflow")
class SignupWorkflow:
    @workflow.init
    def __init__(self, inp: SignupInput) -> None:
        self._inp = inp
        self._status = (
            SignupStatus.ALREADY_MEMBER if inp.already_member else (SignupStatus.AWAITING_OPEN)
        )
        self._started_at = workflow.now()
        self._link: LinkIssued | None = None
        self._replaced: list[str] = []  # hashes of links a newer one killed
        self._spent: list[str] = []  # hashes of links whose token was used
        self._requests: list[datetime] = []  # link requests, for cooldown and cap
        self._last_activity = workflow.now()
        self._reminded_at_activity: datetime | None = None
        self._service: Service | None = None
        self._presented: list[str] = []
        # The two documents this signup asks about: the input's, until the agreement brings
        # the versions the API serves now (a revision while the signup was under way).
        self._docs: dict[str, TermsDocument] = {
            inp.service_terms.document: inp.service_terms,
            inp.privacy_policy.document: inp.privacy_policy,
        }
        self._agreed_at: datetime | None = None
        self._gateway: GatewayMatch | None = None
        self._info: CustomerInfo | None = None
        self._password_hash: str | None = None
        self._registered: Registered | None = None
        self._gateway_entries = 0  # STEP3 checks run, for idempotency keys
        self._wrong_entries = 0  # wrong pairs; the signup locks at policy.gateway_tries
        self._holder: HolderAsked | None = None  # the current confirmation request
        self._holder_status: HolderConfirmation | None = None
        self._holder_asks = 0
        self._version = 0  # bumped on every change the timers must notice
        # What operators see (search attributes, current details)
        self._stage_entered_at = workflow.now()
        self._published_stage = signup_stage(self._status)
        self._published: tuple[object, ...] | None = None
        self._reminders = 0  # idle reminders mailed
        self._mail_trouble = False
        self._flag_cleared = False
        self._last_mail = ""
        self._next: tuple[datetime, str] | None = None
        self._lock = asyncio.Lock()
        self._mail_tasks: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, inp: SignupInput) -> SignupView:
        while not self._status.is_final:
            self._publish()
            await self._wait_for_change_or(*self._next_deadline())
        self._next = None
        self._publish()
        if self._status == SignupStatus.ALREADY_MEMBER:
            # Stay long enough to take the request this signup was started for.
            await workflow.wait_condition(lambda: bool(self._requests), timeout=timedelta(hours=1))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._mail_tasks)
        return self.get_signup()

    # ---- updates -------------------------------------------------------------------

    @workflow.update
    async def request_link(self) -> RequestLinkResult:
        async with self._lock:
            self._check_request_allowed()
            now = workflow.now()
            self._requests.append(now)
            if self._status == SignupStatus.ALREADY_MEMBER:
                self._mail(MailKind.SIGNUP_ALREADY_MEMBER, f"already-member:{len(self._requests)}")
                return RequestLinkResult(status=self._status)
            await self._issue_link(now)
            return RequestLinkResult(status=self._status)

    async def _issue_link(self, now: datetime) -> None:
        """A new link: recorded first, then mailed; the previous one (and its session) dies.
        The customer's ``request_link`` and an operator's resend both come here."""
        seq = (self._link.seq if self._link else 0) + 1
        recorded_then_mailed = workflow.patched(LINK_RECORDED_THEN_MAILED)
        if recorded_then_mailed:
            issued: LinkIssued = await run_local_store_activity(
                SignupActivities.record_link,
                RecordLinkInput(
                    signup_id=self._inp.signup_id,
                    request_key=self._request_key("link"),
                    issued_at=now,
                    ttl=self._inp.policy.link_ttl,
                ),
            )
        else:
            issued = await run_store_activity(
                SignupActivities.issue_link,
                IssueLinkInput(
                    signup_id=self._inp.signup_id,
                    seq=seq,
                    issued_at=now,
                    ttl=self._inp.policy.link_ttl,
                ),
                summary=f"issue and mail link {seq}",
            )
        if self._link is not None:
            self._replaced.append(self._link.token_sha256)
        self._link = issued
        self._last_mail = f"{MailKind.SIGNUP_LINK.value} {issued.seq} at {now.isoformat()}"
        if recorded_then_mailed:
            # Only now, with the link known here, may its mail leave.
            mail_in_background(
                self._mail_tasks,
                SignupActivities.send_link,
                SendLinkInput(signup_id=self._inp.signup_id, seq=issued.seq),
                MailKind.SIGNUP_LINK.value,
                lambda: self._flag_operator(f"{MailKind.SIGNUP_LINK.value} mail not sent"),
                self._inp.mail_task_queue,
            )
        self._status = SignupStatus.AWAITING_OPEN
        self._touch()

    @request_link.validator
    def validate_request_link(self) -> None:
        self._check_request_allowed()

    @workflow.update
    async def begin(self, req: BeginRequest) -> BeginResult:
        async with self._lock:
            self._check_begin(req)
            link = self._link
            if link is None:  # _check_begin refuses first; kept for the type checker
                raise refusal(ErrorCode.LINK_UNKNOWN)
            self._spent.append(link.token_sha256)
            self._service = req.service
            self._status = SignupStatus.IN_PROGRESS
            metrics.signup_link("used")
            self._touch()
            return BeginResult(seq=link.seq)

    @begin.validator
    def validate_begin(self, req: BeginRequest) -> None:
        self._check_begin(req)

    @workflow.update
    async def present_document(self, req: PresentDocument) -> None:
        self._check_session(req.seq)
        if req.document not in self._presented:
            self._presented.append(req.document)
        self._touch()

    @present_document.validator
    def validate_present_document(self, req: PresentDocument) -> None:
        self._check_session(req.seq)
        if req.document not in self._documents():
            raise refusal(ErrorCode.INVALID_INPUT)

    @workflow.update
    async def agree(self, req: AgreeRequest) -> None:
        self._check_agree(req)
        if req.current_service_terms is not None and req.current_privacy_policy is not None:
            # A revision while the signup was under way: the agreement (and the ledger at
            # registration) is for the versions the customer was shown now.
            self._docs = {
                req.current_service_terms.document: req.current_service_terms,
                req.current_privacy_policy.document: req.current_privacy_policy,
            }
        self._agreed_at = workflow.now()
        self._touch()

    @agree.validator
    def validate_agree(self, req: AgreeRequest) -> None:
        self._check_agree(req)

    @workflow.update
    async def enter_gateway(self, req: GatewayEntry) -> GatewayMatch:
        async with self._lock:
            self._check_step(req.seq, needs=[self._agreed_at])
            if not workflow.patched(HOLDER_PATCH):
                self._gateway = await run_store_activity(
                    SignupActivities.match_gateway,
                    MatchGatewayInput(gateway_id=req.gateway_id, pcs_serial=req.pcs_serial),
                )
                self._touch()
                return self._gateway
            match = await self._check_gateway(req)
            changed = self._gateway is None or self._gateway.gateway_id != match.gateway_id
            self._gateway = match
            self._touch()
            if changed or self._holder_status in (None, HolderConfirmation.EXPIRED):
                await self._ask_holder()
            return match

    @enter_gateway.validator
    def validate_enter_gateway(self, req: GatewayEntry) -> None:
        self._check_step(req.seq, needs=[self._agreed_at])

    @workflow.update
    async def enter_customer(self, req: CustomerEntry) -> None:
        self._check_step(req.seq, needs=[self._agreed_at, self._gateway])
        self._info = req.info
        self._password_hash = req.password_hash
        self._touch()

    @enter_customer.validator
    def validate_enter_customer(self, req: CustomerEntry) -> None:
        self._check_step(req.seq, needs=[self._agreed_at, self._gateway])

    @workflow.update
    async def register(self, req: RegisterRequest) -> Registered:
        async with self._lock:
            if self._registered is not None:  # a double submission: the same answer
                return self._registered
            self._check_register(req)
            holder_rule = workflow.patched(HOLDER_PATCH)
            if holder_rule:
                await self._ensure_holder_confirmed()
            gateway, info, service = self._gateway, self._info, self._service
            password_hash, agreed_at = self._password_hash, self._agreed_at
            if not (gateway and info and service and password_hash and agreed_at):
                raise refusal(ErrorCode.SIGNUP_INCOMPLETE)
            registered = await run_update_store_activity(
                SignupActivities.register_member,
                RegisterMemberInput(
                    signup_id=self._inp.signup_id,
                    service=service,
                    gateway=gateway,
                    info=info,
                    password_hash=password_hash,
                    agreed=[(doc, agreed_at) for doc in self._documents().values()],
                    registered_at=workflow.now(),
                ),
            )
            self._registered = registered
            self._mail(
                MailKind.SIGNUP_COMPLETE,
                "complete",
                {"gateway_id": gateway.gateway_id, "pcs_serial": gateway.pcs_serial},
            )
            if holder_rule:  # the household hears of every membership on its gateway
                self._mail_via(
                    HolderActivities.mail_registration_notice,
                    RegistrationNoticeInput(
                        key=f"{workflow.info().workflow_id}:registered-notice",
                        signup_id=self._inp.signup_id,
                        account_id=gateway.account_id,
                        gateway_id=gateway.gateway_id,
                        registered_at=registered.registered_at,
                    ),
                )
            if workflow.patched(PATCH_LOCAL_STORE_WRITES):
                # The answer does not wait for the signal's round trip; the run awaits
                # it before it ends, like the mails.
                self._mail_tasks.append(
                    asyncio.create_task(self._tell_enrollment(gateway, registered))
                )
            else:
                await self._tell_enrollment(gateway, registered)
            self._status = SignupStatus.REGISTERED
            self._touch()
            return registered

    @register.validator
    def validate_register(self, req: RegisterRequest) -> None:
        if self._registered is None:
            self._check_register(req)
            # Pressing 登録する again while waiting leaves nothing in history.
            if self._holder_status == HolderConfirmation.PENDING:
                raise refusal(ErrorCode.HOLDER_CONFIRMATION_PENDING)
            if self._holder_status == HolderConfirmation.EXPIRED:
                raise refusal(ErrorCode.HOLDER_CONFIRMATION_EXPIRED)

    @workflow.update
    async def decide_holder(self, req: HolderDecision) -> HolderState:
        """The circle account holder's answer (the API checked who is answering)."""
        async with self._lock:
            self._check_decision(req)
            await run_update_store_activity(
                HolderActivities.record_holder_decision,
                RecordHolderDecisionInput(
                    signup_id=self._inp.signup_id,
                    confirmation_id=req.confirmation_id,
                    confirm=req.confirm,
                    channel=req.channel,
                    decided_at=workflow.now(),
                ),
            )
            seq = self._holder.seq if self._holder else 0
            if req.confirm:
                self._holder_status = HolderConfirmation.CONFIRMED
                self._mail(MailKind.HOLDER_CONFIRMED, f"holder-confirmed:{seq}")
            else:  # the store closed the signup in the same transaction
                self._holder_status = HolderConfirmation.DECLINED
                self._status = SignupStatus.HOLDER_DECLINED
                self._mail(MailKind.HOLDER_DECLINED, f"holder-declined:{seq}")
            self._version += 1
            return self._holder_state()

    @decide_holder.validator
    def validate_decide_holder(self, req: HolderDecision) -> None:
        self._check_decision(req)

    @workflow.update
    async def ask_holder_again(self, req: SessionRequest) -> HolderState:
        """A new confirmation request after the last one expired unanswered."""
        async with self._lock:
            self._check_ask_again(req)
            if self._holder_status in (None, HolderConfirmation.EXPIRED):
                await self._ask_holder()
                self._touch()
            return self._holder_state()

    @ask_holder_again.validator
    def validate_ask_holder_again(self, req: SessionRequest) -> None:
        self._check_ask_again(req)

    # ---- queries -------------------------------------------------------------------

    @workflow.query
    def get_signup(self) -> SignupView:
        return SignupView(
            status=self._status,
            link_seq=self._link.seq if self._link else 0,
            link_expires_at=self._link.expires_at if self._link else None,
            service=self._service,
            documents_presented=list(self._presented),
            agreed=self._agreed_at is not None,
            gateway_id=self._gateway.gateway_id if self._gateway else None,
            pcs_serial=self._gateway.pcs_serial if self._gateway else None,
            info=self._info,
            password=MASK if self._password_hash else None,
            registered_at=self._registered.registered_at if self._registered else None,
            holder_confirmation=self._holder_status,
            holder_confirmation_expires_at=self._holder.expires_at if self._holder else None,
            gateway_entry_locked=self._locked(),
            needs_operator=self._needs_operator(),
        )

    @workflow.query
    def link_state(self, token_sha256: str) -> LinkStatus:
        """``valid``, or the code of the refusal the link would get."""
        code = self._link_refusal(token_sha256)
        return LinkStatus.VALID if code is None else LinkStatus(code.value)

    # ---- timers --------------------------------------------------------------------

    def _next_deadline(self) -> tuple[datetime | None, Callable[[], Awaitable[None]]]:
        deadline, action = self._step_deadline()
        holder = self._holder
        if (
            self._holder_status == HolderConfirmation.PENDING
            and holder is not None
            and holder.expires_at is not None
            and (deadline is None or holder.expires_at < deadline)
        ):
            return holder.expires_at, self._expire_holder
        return deadline, action

    def _step_deadline(self) -> tuple[datetime | None, Callable[[], Awaitable[None]]]:
        policy = self._inp.policy
        if self._status == SignupStatus.AWAITING_OPEN and self._link is not None:
            return self._link.expires_at, self._expire_link
        if self._status == SignupStatus.AWAITING_OPEN:  # started, no link asked for yet
            return self._started_at + policy.abandon_after, self._abandon
        if self._status == SignupStatus.LINK_EXPIRED and self._link is not None:
            return self._link.expires_at + policy.abandon_after, self._abandon
        # A locked signup is not urged on: it only waits to be abandoned.
        if self._reminded_at_activity != self._last_activity and not self._locked():
            due = self._last_activity + policy.idle_reminder_after
            return defer_out_of_quiet_hours(due, self._inp.quiet_hours), self._remind
        return self._last_activity + policy.abandon_after, self._abandon

    async def _wait_for_change_or(
        self, deadline: datetime | None, action: Callable[[], Awaitable[None]]
    ) -> None:
        seen = self._version
        changed = lambda: self._version != seen  # noqa: E731
        if deadline is None:
            await workflow.wait_condition(changed)
            return
        self._next = (deadline, TIMER_SUMMARIES.get(action.__name__, action.__name__))
        self._describe()
        delay = deadline - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(
                    changed,
                    timeout=delay,
                    timeout_summary=f"{self._next[1]} at {deadline.isoformat()}",
                )
                return
            except TimeoutError:
                pass
        async with self._lock:
            if self._version == seen:
                await action()

    async def _expire_link(self) -> None:
        if self._link is None:
            return
        # Once per link: expiry moves the signup out of AWAITING_OPEN, and only a new
        # link (a new seq) brings it back.
        self._status = SignupStatus.LINK_EXPIRED
        metrics.signup_link("expired")
        self._mail(MailKind.SIGNUP_EXPIRED, f"expired:{self._link.seq}")
        self._version += 1

    async def _expire_holder(self) -> None:
        self._holder_status = HolderConfirmation.EXPIRED
        seq = self._holder.seq if self._holder else 0
        self._mail(MailKind.HOLDER_CONFIRMATION_EXPIRED, f"holder-expired:{seq}")
        self._version += 1

    async def _remind(self) -> None:
        self._reminded_at_activity = self._last_activity
        self._reminders += 1
        self._mail(MailKind.SIGNUP_REMINDER, f"idle:{self._last_activity.isoformat()}")
        self._version += 1

    async def _abandon(self) -> None:
        try:
            await run_store_activity(
                SignupActivities.release_signup,
                ReleaseSignupInput(signup_id=self._inp.signup_id, released_at=workflow.now()),
            )
        except (ActivityError, ApplicationError) as err:
            # Abandoned all the same: the reservation stays pending (a re-entry of the
            # address starts a new run on it) and an operator is asked to look.
            workflow.logger.warning("reservation not released: %s", type(err).__name__)
            self._flag_operator("reservation not released")
        self._status = SignupStatus.ABANDONED
        self._version += 1

    # ---- checks --------------------------------------------------------------------

    def _check_request_allowed(self) -> None:
        if self._status == SignupStatus.REGISTERED:
            raise refusal(ErrorCode.SIGNUP_COMPLETED)
        if self._status in (
            SignupStatus.ABANDONED,
            SignupStatus.HOLDER_DECLINED,
            SignupStatus.CANCELLED,
        ):
            raise refusal(ErrorCode.SIGNUP_CLOSED)
        now = workflow.now()
        policy = self._inp.policy
        if self._requests and now - self._requests[-1] < policy.resend_cooldown:
            raise refusal(ErrorCode.RESEND_TOO_SOON)
        today = [t for t in self._requests if now - t < timedelta(days=1)]
        if len(today) >= policy.resend_daily_cap:
            raise refusal(ErrorCode.RESEND_LIMIT)

    def _link_refusal(self, token_sha256: str) -> ErrorCode | None:
        if self._status == SignupStatus.REGISTERED:
            return ErrorCode.SIGNUP_COMPLETED
        if self._status in (
            SignupStatus.ABANDONED,
            SignupStatus.ALREADY_MEMBER,
            SignupStatus.HOLDER_DECLINED,
            SignupStatus.CANCELLED,
        ):
            return ErrorCode.SIGNUP_CLOSED
        current = self._link
        if current is not None and hmac.compare_digest(current.token_sha256, token_sha256):
            if token_sha256 in self._spent:
                return ErrorCode.LINK_USED
            if current.expired(workflow.now()):
                return ErrorCode.LINK_EXPIRED
            return None
        if any(hmac.compare_digest(old, token_sha256) for old in self._replaced):
            return ErrorCode.LINK_REPLACED
        return ErrorCode.LINK_UNKNOWN

    def _check_begin(self, req: BeginRequest) -> None:
        code = self._link_refusal(req.token_sha256)
        if code is not None:
            raise refusal(code)
        if req.service != Service.OMRON_MONITORING:
            raise refusal(ErrorCode.SERVICE_OTHER_SITE)

    def _check_session(self, seq: int) -> None:
        if self._status == SignupStatus.REGISTERED:
            raise refusal(ErrorCode.SIGNUP_COMPLETED)
        if self._status == SignupStatus.HOLDER_DECLINED:
            raise refusal(ErrorCode.HOLDER_DECLINED)
        if self._status.is_final:
            raise refusal(ErrorCode.SIGNUP_CLOSED)
        if self._status != SignupStatus.IN_PROGRESS or self._link is None or seq != self._link.seq:
            raise refusal(ErrorCode.SESSION_INVALID)

    def _check_agree(self, req: AgreeRequest) -> None:
        self._check_session(req.seq)
        if set(self._documents()) - set(self._presented):
            raise refusal(ErrorCode.DOCUMENTS_NOT_PRESENTED)
        asked = (
            req.current_service_terms or self._inp.service_terms,
            req.current_privacy_policy or self._inp.privacy_policy,
        )
        if (req.service_terms_version, req.privacy_policy_version) != (
            asked[0].version,
            asked[1].version,
        ):
            raise refusal(ErrorCode.TERMS_VERSION_OUTDATED)

    def _check_step(self, seq: int, needs: list[object]) -> None:
        self._check_session(seq)
        if self._locked():
            raise refusal(ErrorCode.SIGNUP_LOCKED)
        if any(step is None for step in needs):
            raise refusal(ErrorCode.SIGNUP_INCOMPLETE)

    def _locked(self) -> bool:
        return self._wrong_entries >= self._inp.policy.gateway_tries

    def _check_decision(self, req: HolderDecision) -> None:
        holder = self._holder
        if self._status.is_final and self._status != SignupStatus.HOLDER_DECLINED:
            raise refusal(ErrorCode.CONFIRMATION_EXPIRED)
        if holder is None or holder.confirmation_id != req.confirmation_id:
            raise refusal(ErrorCode.CONFIRMATION_REPLACED)
        if self._holder_status in (HolderConfirmation.CONFIRMED, HolderConfirmation.DECLINED):
            raise refusal(ErrorCode.CONFIRMATION_USED)
        expired = holder.expires_at is not None and workflow.now() >= holder.expires_at
        if self._holder_status != HolderConfirmation.PENDING or expired:
            raise refusal(ErrorCode.CONFIRMATION_EXPIRED)

    def _check_ask_again(self, req: SessionRequest) -> None:
        self._check_step(req.seq, needs=[self._agreed_at, self._gateway])
        if self._holder_status == HolderConfirmation.PENDING:
            raise refusal(ErrorCode.HOLDER_CONFIRMATION_PENDING)
        if (
            self._holder_status in (None, HolderConfirmation.EXPIRED)
            and self._holder_asks >= self._inp.policy.holder_asks
        ):
            raise refusal(ErrorCode.HOLDER_ASK_LIMIT)

    def _check_register(self, req: RegisterRequest) -> None:
        self._check_step(req.seq, needs=[self._agreed_at, self._gateway, self._info])

    # ---- helpers -------------------------------------------------------------------

    def _documents(self) -> dict[str, TermsDocument]:
        return self._docs

    def _touch(self) -> None:
        self._last_activity = workflow.now()
        self._version += 1

    def _mail(self, kind: MailKind, key: str, context: dict[str, str] | None = None) -> None:
        request = MailRequest(
            key=f"{workflow.info().workflow_id}:{key}",
            kind=kind,
            signup_id=self._inp.signup_id,
            context=context or {},
        )
        send_in_background(
            self._mail_tasks,
            request,
            lambda: self._flag_operator(f"{kind.value} mail not sent"),
            self._inp.mail_task_queue,
        )
        self._last_mail = f"{kind.value} at {workflow.now().isoformat()}"
        self._describe()

    def _flag_operator(self, reason: str) -> None:
        """A permanent failure (a mail that cannot be sent, a store write that keeps
        failing): flag it for an operator (query, search attribute, details) and go on."""
        workflow.logger.warning("signup needs an operator: %s", reason)
        self._mail_failed()

    def _request_key(self, what: str) -> str:
        """Unique per run and update: a new run never reuses an older run's records."""
        info = workflow.current_update_info()
        update_id = info.id if info else "run"
        return f"{workflow.info().workflow_id}:{workflow.info().run_id}:{what}:{update_id}"

    def _mail_via(
        self, activity: Callable[[Any, MailInputT], Awaitable[object]], inp: MailInputT
    ) -> None:
        """A mail activity that needs what the workflow must not see (a link token, an
        address): in the background; a mail that cannot be sent flags an operator."""
        mail_in_background(
            self._mail_tasks,
            activity,
            inp,
            "holder mail",
            lambda: self._flag_operator("a mail to the account holder failed"),
            self._inp.mail_task_queue,
        )

    async def _check_gateway(self, req: GatewayEntry) -> GatewayMatch:
        """STEP3 with limits: a wrong pair counts, the last allowed one locks the signup."""
        policy = self._inp.policy
        check: GatewayCheck = await run_update_store_activity(
            HolderActivities.check_gateway,
            CheckGatewayInput(
                signup_id=self._inp.signup_id,
                attempt_key=f"{self._inp.signup_id}:gateway:{self._gateway_entries}",
                gateway_id=req.gateway_id,
                pcs_serial=req.pcs_serial,
                at=workflow.now(),
                failures_per_day=policy.gateway_failures_per_day,
            ),
        )
        self._gateway_entries += 1
        if check.outcome == GatewayOutcome.WRONG_PAIR:
            self._wrong_entries += 1
            self._touch()
            raise refusal(
                ErrorCode.SIGNUP_LOCKED if self._locked() else ErrorCode.GATEWAY_NOT_APPLIED
            )
        if check.outcome == GatewayOutcome.GATEWAY_LOCKED:
            raise refusal(ErrorCode.GATEWAY_LOCKED)
        if check.outcome == GatewayOutcome.ALREADY_MEMBER or check.match is None:
            raise refusal(ErrorCode.GATEWAY_ALREADY_MEMBER)
        return check.match

    async def _ask_holder(self) -> None:
        """Ask the circle account holder (unless the signup's e-mail is theirs)."""
        gateway = self._gateway
        if gateway is None:
            raise refusal(ErrorCode.SIGNUP_INCOMPLETE)
        if self._holder_asks >= self._inp.policy.holder_asks:
            raise refusal(ErrorCode.HOLDER_ASK_LIMIT)
        policy = self._inp.policy
        asked: HolderAsked = await run_update_store_activity(
            HolderActivities.ask_holder,
            AskHolderInput(
                signup_id=self._inp.signup_id,
                gateway=gateway,
                seq=(self._holder.seq if self._holder else 0) + 1,
                asked_at=workflow.now(),
                ttl=policy.holder_confirmation_ttl,
                asks_per_gateway_per_day=policy.holder_asks_per_gateway_per_day,
            ),
        )
        self._version += 1
        if not asked.needed or asked.confirmation_id is None:
            self._holder, self._holder_status = None, HolderConfirmation.NOT_NEEDED
            return
        self._holder, self._holder_status = asked, HolderConfirmation.PENDING
        self._holder_asks += 1
        self._mail_via(
            HolderActivities.mail_holder_confirmation,
            HolderMailInput(
                key=f"{workflow.info().workflow_id}:holder:{asked.seq}",
                confirmation_id=asked.confirmation_id,
            ),
        )

    async def _ensure_holder_confirmed(self) -> None:
        if self._holder_status is None:  # STEP3 was entered before this rule existed
            await self._ask_holder()
        if self._holder_status == HolderConfirmation.PENDING:
            raise refusal(ErrorCode.HOLDER_CONFIRMATION_PENDING)
        if self._holder_status == HolderConfirmation.EXPIRED:
            raise refusal(ErrorCode.HOLDER_CONFIRMATION_EXPIRED)

    def _holder_state(self) -> HolderState:
        return HolderState(
            holder_confirmation=self._holder_status or HolderConfirmation.NOT_NEEDED,
            expires_at=self._holder.expires_at if self._holder else None,
        )

    async def _tell_enrollment(self, gateway: GatewayMatch, registered: Registered) -> None:
        """Signal the customer's journey; a journey that has ended is only logged."""
        handle = workflow.get_external_workflow_handle_for(
            EnrollmentWorkflow.run, enrollment_workflow_id(gateway.account_id)
        )
        try:
            await handle.signal(
                EnrollmentWorkflow.points_registered,
                PointsRegistered(
                    gateway_id=registered.gateway_id, registered_at=registered.registered_at
                ),
            )
        except Exception as err:
            workflow.logger.warning("journey not signalled: %s", type(err).__name__)

    # ---- operators (appended: the handlers above keep their order) --------------------

    @workflow.update
    async def operator_action(self, req: OperatorRequest) -> OperatorOutcome:
        async with self._lock:
            self._check_operator(req)
            before = signup_stage(self._status)
            detail = await self._operate(req)
            self._publish()
            return OperatorOutcome(
                action=req.action,
                before_stage=before,
                after_stage=signup_stage(self._status),
                at=workflow.now(),
                detail=detail,
            )

    @operator_action.validator
    def validate_operator_action(self, req: OperatorRequest) -> None:
        self._check_operator(req)

    def _check_operator(self, req: OperatorRequest) -> None:
        if self._status == SignupStatus.REGISTERED:
            raise refusal(ErrorCode.SIGNUP_COMPLETED)
        if self._status.is_final:
            raise refusal(ErrorCode.SIGNUP_CLOSED)
        if req.action not in SIGNUP_ACTIONS:
            raise refusal(ErrorCode.ACTION_NOT_APPLICABLE)
        if req.action == OperatorAction.CLEAR_FLAG and not self._needs_operator():
            raise refusal(ErrorCode.NOT_FLAGGED)
        if req.action == OperatorAction.EXTEND and (
            self._link is None
            or self._status not in (SignupStatus.AWAITING_OPEN, SignupStatus.LINK_EXPIRED)
        ):
            raise refusal(ErrorCode.ACTION_NOT_APPLICABLE)

    async def _operate(self, req: OperatorRequest) -> str:
        now = workflow.now()
        if req.action == OperatorAction.RESEND:
            # The customer's own path; their cooldown and daily cap are theirs, not ours.
            await self._issue_link(now)
            return f"{MailKind.SIGNUP_LINK.value}:{self._link.seq if self._link else 0}"
        if req.action == OperatorAction.EXTEND and self._link is not None:
            self._link = self._link.model_copy(
                update={"expires_at": now + self._inp.policy.link_ttl}
            )
            self._status = SignupStatus.AWAITING_OPEN
            self._touch()
            return f"link_expires_at={self._link.expires_at.isoformat()}"
        if req.action == OperatorAction.CANCEL:
            await run_store_activity(
                SignupActivities.release_signup,
                ReleaseSignupInput(signup_id=self._inp.signup_id, released_at=now),
                summary="operator: release the address",
            )
            self._status = SignupStatus.CANCELLED
            update = workflow.current_update_info()
            self._mail(MailKind.SIGNUP_CANCELLED, f"cancelled:{update.id if update else ''}")
            self._version += 1
            return MailKind.SIGNUP_CANCELLED.value
        self._mail_trouble = False
        self._flag_cleared = True
        return "flag_cleared"

    def _needs_operator(self) -> bool:
        return (self._mail_trouble or self._locked()) and not self._flag_cleared

    def _mail_failed(self) -> None:
        self._mail_trouble = True
        self._flag_cleared = False
        self._publish()

    def _publish(self) -> None:
        """The four search attributes every workflow type shares, and the details."""
        stage = signup_stage(self._status)
        if stage != self._published_stage:
            self._published_stage = stage
            self._stage_entered_at = workflow.now()
            metrics.signup_stage_entered(stage)
        self._describe()
        values = (stage, self._stage_entered_at, self._sent(), self._needs_operator())
        if values == self._published or not workflow.patched(VISIBILITY_PATCH):
            return
        self._published = values
        workflow.upsert_search_attributes(
            [
                sa.STAGE.value_set(stage),
                sa.STAGE_ENTERED_AT.value_set(self._stage_entered_at),
                sa.REMINDER_COUNT.value_set(self._sent()),
                sa.NEEDS_OPERATOR.value_set(self._needs_operator()),
            ]
        )

    def _sent(self) -> int:
        return (self._link.seq if self._link else 0) + self._reminders

    def _describe(self) -> None:
        """The UI's one screen: where, since when, what was mailed, what it waits for.
        Codes and times only (no address, no name, no token)."""
        lines = [
            f"signup **{self._status.value}** since {self._stage_entered_at.isoformat()}; "
            f"links and reminders mailed: {self._sent()}",
            f"waits for: {self._awaiting()}",
            f"last mail: {self._last_mail or 'none'}",
        ]
        if self._link is not None:
            lines.append(f"link {self._link.seq} expires {self._link.expires_at.isoformat()}")
        if self._next is not None:
            lines.append(f"next: {self._next[1]} at {self._next[0].isoformat()}")
        if self._mail_trouble:
            lines.append("a mail could not be delivered")
        if self._locked():
            lines.append("locked: too many wrong gateway/serial pairs")
        if self._needs_operator():
            lines.append("**needs an operator**")
        workflow.set_current_details("\n\n".join(lines))

    def _awaiting(self) -> str:
        if self._status.is_final:
            return "nothing (ended)"
        if self._status == SignupStatus.AWAITING_OPEN:
            return "the customer to open the link (STEP1)"
        if self._status == SignupStatus.LINK_EXPIRED:
            return "a new link request"
        steps = [
            (len(self._presented) >= len(self._documents()), "STEP2 documents"),
            (self._agreed_at is not None, "STEP2 agreement"),
            (self._gateway is not None, "STEP3 gateway"),
            (self._info is not None, "STEP4 customer details"),
        ]
        missing = next((what for done, what in steps if not done), None)
        if missing:
            return missing
        if self._holder_status == HolderConfirmation.PENDING:
            return "the circle account holder's confirmation"
        return "STEP5 登録する"

    @workflow.query
    def link_view(self, token_sha256: str) -> LinkView:
        """The link page's one query: ``link_state`` and, for a valid link, when it
        expires (an operator's extension included: the store keeps the first expiry)."""
        state = self.link_state(token_sha256)
        link = self._link if state == LinkStatus.VALID else None
        return LinkView(state=state, expires_at=link.expires_at if link else None)
