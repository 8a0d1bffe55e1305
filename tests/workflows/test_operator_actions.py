"""Operator actions and stuck rules on the time-skipping server: each rule by time, on the
attributes the workflow publishes, and each action with its validator's refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from domain import search_attributes as sa
from domain.enrollment import ReminderPolicy, Stage
from domain.errors import ErrorCode
from domain.mail import MailKind
from domain.operators import (
    OperatorAction,
    OperatorOutcome,
    OperatorRequest,
    StuckPolicy,
    StuckRule,
    signup_stage,
    stuck_rules,
)
from domain.signup import LinkStatus, LinkView, SignupStatus
from tests.factories import add_customer
from tests.waiting import eventually
from tests.workflows.harness import MailRecorder, running_worker, wait_stage
from tests.workflows.signup_harness import (
    QUICK,
    hashed,
    signup_worker,
    start_signup,
    token_in,
)
from tests.workflows.test_enrollment_reminders import NO_QUIET, skip_to
from workflows.enrollment import EnrollmentWorkflow
from workflows.signup import SignupWorkflow

POLICY = StuckPolicy()
RULES = {rule.name: rule for rule in stuck_rules(POLICY)}


def rule(name: str) -> StuckRule:
    return RULES[name]


async def meets(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], r: StuckRule) -> bool:
    attrs = (await handle.describe()).typed_search_attributes
    return r.matches(
        await env.get_current_time(),
        attrs.get(sa.STAGE),
        attrs.get(sa.STAGE_ENTERED_AT),
        attrs.get(sa.NEEDS_OPERATOR),
    )


async def act(
    handle: WorkflowHandle[Any, Any], action: OperatorAction, reason: str = "test"
) -> OperatorOutcome:
    outcome: OperatorOutcome = await handle.execute_update(
        "operator_action",
        OperatorRequest(action=action, operator="tester", reason=reason),
        result_type=OperatorOutcome,
    )
    return outcome


async def refused(handle: WorkflowHandle[Any, Any], action: OperatorAction) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await act(handle, action)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return str(cause.type)


async def test_journey_stuck_rules_by_time_and_every_journey_action(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    reminders = ReminderPolicy.model_validate({"delays": ["P1D", "P3D"]})
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    consent_rule = rule("awaiting_consent_over_14d")
    flag_rule = rule("needs_operator_journey")
    async with running_worker(ts_clock.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id, reminders, NO_QUIET)
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        entered = status.stage_entered_at

        # Not flagged, not old: nothing to clear or revive; resend mails the invitation.
        assert await refused(handle, OperatorAction.CLEAR_FLAG) == ErrorCode.NOT_FLAGGED
        assert await refused(handle, OperatorAction.REVIVE) == ErrorCode.NOT_DORMANT
        resent = await act(handle, OperatorAction.RESEND)
        assert (resent.detail, resent.before_stage, resent.after_stage) == (
            "invitation",
            "awaiting_consent",
            "awaiting_consent",
        )
        await eventually(lambda: len(mails.of_kind(MailKind.INVITATION)) == 2)

        # Dormant after the second reminder: the flag rule selects it, not yet the age rule.
        await skip_to(ts_clock, entered + timedelta(days=3, minutes=1))
        await eventually(lambda: len(mails.of_kind(MailKind.REMINDER)) == 2)
        assert await meets(ts_clock, handle, flag_rule)
        assert not await meets(ts_clock, handle, consent_rule)

        # clear_flag: unflagged, still dormant (no reminder is due).
        await act(handle, OperatorAction.CLEAR_FLAG, "called the customer")
        assert not await meets(ts_clock, handle, flag_rule)
        assert await refused(handle, OperatorAction.CLEAR_FLAG) == ErrorCode.NOT_FLAGGED

        # Day 13: not stuck by age; day 14 and a minute: stuck.
        await skip_to(ts_clock, entered + timedelta(days=13, hours=23))
        assert not await meets(ts_clock, handle, consent_rule)
        await skip_to(ts_clock, entered + timedelta(days=14, minutes=1))
        assert await meets(ts_clock, handle, consent_rule)

        # revive: a reminder now, and the schedule again from now.
        revived = await act(handle, OperatorAction.REVIVE)
        assert revived.detail.startswith("reminder;next_reminder=")
        await eventually(lambda: len(mails.of_kind(MailKind.REMINDER)) == 3)
        status = await handle.query(EnrollmentWorkflow.get_status)
        now = await ts_clock.get_current_time()
        assert (status.dormant, status.reminders_sent) == (False, 0)
        assert status.next_reminder_at is not None
        assert abs(status.next_reminder_at - (now + timedelta(days=1))) < timedelta(minutes=1)
        await skip_to(ts_clock, now + timedelta(days=1, minutes=1))
        await eventually(lambda: len(mails.of_kind(MailKind.REMINDER)) == 4)

        # extend: the schedule restarts (the next reminder a full first delay away).
        extended = await act(handle, OperatorAction.EXTEND)
        now = await ts_clock.get_current_time()
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert status.reminders_sent == 0 and status.next_reminder_at is not None
        assert abs(status.next_reminder_at - (now + timedelta(days=1))) < timedelta(minutes=1)
        assert extended.detail == f"next_reminder={status.next_reminder_at.isoformat()}"

        rechecked = await act(handle, OperatorAction.RECHECK_ELIGIBILITY)
        assert rechecked.detail == "eligible"

        # cancel: the journey ends, the customer is mailed; nothing more is accepted.
        cancelled = await act(handle, OperatorAction.CANCEL, "customer asked by phone")
        assert (cancelled.before_stage, cancelled.after_stage) == ("awaiting_consent", "cancelled")
        result = await handle.result()
        assert result.stage == Stage.CANCELLED
        assert len(mails.of_kind(MailKind.JOURNEY_CANCELLED)) == 1


async def test_cancel_is_refused_once_a_gateway_is_applied(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    from domain.enrollment import ApplyRequest, ConsentRequest
    from tests.workflows.harness import TERMS

    customer = add_customer(sqlite_engine)
    async with running_worker(ts_clock.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id, quiet=NO_QUIET)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        assert await refused(handle, OperatorAction.CANCEL) == ErrorCode.WRONG_STAGE
        # resend in awaiting_points_signup mails the reminder of that step
        resent = await act(handle, OperatorAction.RESEND)
        assert resent.detail == "reminder"


async def test_signup_publishes_the_search_attributes_and_the_expired_link_rule(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    sink = MailSink().start()
    expired_rule = rule("signup_link_expired_over_2d")
    try:
        async with signup_worker(ts_clock.client, sqlite_engine, sink) as settings:
            customer = add_customer(sqlite_engine)
            s = await start_signup(
                ts_clock.client, settings, sqlite_engine, customer.email, policy=QUICK
            )
            first = token_in(sink, customer.email)

            async def attrs() -> tuple[Any, ...]:
                a = (await s.describe()).typed_search_attributes
                return (
                    a.get(sa.STAGE),
                    a.get(sa.STAGE_ENTERED_AT),
                    a.get(sa.REMINDER_COUNT),
                    a.get(sa.NEEDS_OPERATOR),
                )

            _, _, sent, flagged = await eventually(
                lambda: _when(attrs(), lambda v: v[0] == signup_stage(SignupStatus.AWAITING_OPEN))
            )
            assert (sent, flagged) == (1, False)
            assert await refused(s, OperatorAction.REVIVE) == ErrorCode.ACTION_NOT_APPLICABLE
            assert await refused(s, OperatorAction.CLEAR_FLAG) == ErrorCode.NOT_FLAGGED

            started = await ts_clock.get_current_time()
            await skip_to(ts_clock, started + timedelta(hours=24, minutes=1))
            expired = await eventually(
                lambda: _when(attrs(), lambda v: v[0] == signup_stage(SignupStatus.LINK_EXPIRED))
            )
            assert expired[1] >= started + timedelta(hours=23, minutes=59)
            assert not await meets(ts_clock, s, expired_rule)
            await skip_to(ts_clock, expired[1] + timedelta(days=1, hours=23))
            assert not await meets(ts_clock, s, expired_rule)
            await skip_to(ts_clock, expired[1] + timedelta(days=2, minutes=1))
            assert await meets(ts_clock, s, expired_rule)

            # extend: the same link is valid again; the rule no longer selects it.
            extended = await act(s, OperatorAction.EXTEND)
            assert extended.after_stage == signup_stage(SignupStatus.AWAITING_OPEN)
            assert await s.query(SignupWorkflow.link_state, hashed(first)) == LinkStatus.VALID
            assert not await meets(ts_clock, s, expired_rule)
            # The link page's one query tells the extended expiry (the store keeps the
            # first one, 24 hours after the link was mailed).
            page = await s.query(SignupWorkflow.link_view, hashed(first))
            assert page.state == LinkStatus.VALID and page.expires_at is not None
            assert page.expires_at == (await s.query(SignupWorkflow.get_signup)).link_expires_at
            assert page.expires_at > started + timedelta(days=3)

            # resend: a new link by the customer's own path; the old one is replaced.
            resent = await act(s, OperatorAction.RESEND)
            assert resent.detail == "signup_link:2"
            second = await eventually(lambda: _ready(lambda: token_in(sink, customer.email), first))
            assert await s.query(SignupWorkflow.link_state, hashed(second)) == LinkStatus.VALID
            assert (
                await s.query(SignupWorkflow.link_state, hashed(first)) == LinkStatus.LINK_REPLACED
            )
            assert await s.query(SignupWorkflow.link_view, hashed(first)) == LinkView(
                state=LinkStatus.LINK_REPLACED
            )
            assert (await attrs())[2] == 2

            # cancel: the address is told, the signup ends, its attributes say so.
            cancelled = await act(s, OperatorAction.CANCEL, "duplicate signup")
            assert cancelled.after_stage == signup_stage(SignupStatus.CANCELLED)
            await eventually(
                lambda: any("手続きを終了しました" in m.subject for m in sink.received),
                what="the cancellation mail",
            )
            view = await s.result()
            assert view.status == SignupStatus.CANCELLED
            assert (await attrs())[0] == "signup_cancelled"
            # A closed signup takes no update (the API answers signup_closed).
            with pytest.raises(RPCError):
                await act(s, OperatorAction.RESEND)
    finally:
        sink.stop()


async def _when(value: Any, ok: Any) -> Any:
    got = await value
    return got if ok(got) else None


def _ready(read: Any, old: str) -> str | None:
    try:
        token: str = read()
    except AssertionError:
        return None
    return token if token != old else None


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_a_locked_signup_needs_an_operator_until_the_flag_is_cleared(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    from domain.signup import GatewayEntry
    from tests.workflows.signup_harness import applied_customer
    from tests.workflows.test_signup import walk_to_confirmation

    customer = applied_customer(sqlite_engine)
    flag_rule = rule("needs_operator_signup")
    async with signup_worker(ts_clock.client, sqlite_engine, mail_sink) as settings:
        s = await start_signup(ts_clock.client, settings, sqlite_engine, customer.email, QUICK)
        seq = await walk_to_confirmation(
            s, mail_sink, customer.email, customer.eligible_gateway, customer.eligible_pcs
        )
        details = await current_details(s)
        assert "signup **in_progress** since " in details
        assert "waits for: STEP5" in details and "last mail: signup_link 1 at " in details
        assert customer.email not in details
        assert not await meets(ts_clock, s, flag_rule)
        for n in range(QUICK.gateway_tries):
            entry = GatewayEntry(
                seq=seq, gateway_id=customer.eligible_gateway, pcs_serial=f"BAD0000{n}"
            )
            with pytest.raises(WorkflowUpdateFailedError):
                await s.execute_update(SignupWorkflow.enter_gateway, entry)
        await eventually(lambda: meets(ts_clock, s, flag_rule), what="the locked signup flagged")
        assert "**needs an operator**" in await current_details(s)
        await act(s, OperatorAction.CLEAR_FLAG, "checked with the household")
        assert not await meets(ts_clock, s, flag_rule)
        assert "needs an operator" not in await current_details(s)
        await act(s, OperatorAction.CANCEL, "probing")
        assert (await s.result()).status == SignupStatus.CANCELLED
