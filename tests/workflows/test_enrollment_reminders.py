"""Reminder timers on the time-skipping server: each at its configured time, never at
night (JST), capped, dormancy flagged for operators, revival, and stopped by the step."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.enrollment import ConsentRequest, ReminderPolicy, Stage, next_reminder_at
from domain.jst import JST, QuietHours, is_quiet
from domain.mail import MailKind
from tests.factories import add_customer
from tests.waiting import eventually
from tests.workflows.harness import TERMS, MailRecorder, near, running_worker, wait_stage
from workflows.enrollment import EnrollmentWorkflow

# Quiet hours that never cover the test's clock, so the delays alone decide.
NO_QUIET = QuietHours(start=time(0, 0), end=time(0, 0))


async def skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


def reminders(mails: MailRecorder) -> list[tuple[str, datetime]]:
    return [(req.context["awaited"], at) for req, at in mails.of_kind(MailKind.REMINDER)]


def reminded_for(mails: MailRecorder) -> list[str]:
    """What each reminder so far was about, in the order they were sent."""
    return [step for step, _ in reminders(mails)]


async def test_each_reminder_at_its_time_then_dormant_then_revived(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    policy = ReminderPolicy.model_validate({"delays": ["P1D", "P3D"]})
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(ts_clock.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id, policy, NO_QUIET)
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        entered = status.stage_entered_at
        assert status.next_reminder_at == entered + timedelta(days=1)

        await skip_to(ts_clock, entered + timedelta(hours=23))
        assert reminders(mails) == []

        await skip_to(ts_clock, entered + timedelta(days=1, minutes=1))
        await eventually(lambda: len(reminders(mails)) == 1)
        awaited, at = reminders(mails)[0]
        assert awaited == "consent"
        assert near(at, entered + timedelta(days=1))
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.reminders_sent, status.dormant) == (1, False)
        assert status.next_reminder_at == entered + timedelta(days=3)

        await skip_to(ts_clock, entered + timedelta(days=3, minutes=1))
        await eventually(lambda: len(reminders(mails)) == 2)
        assert near(reminders(mails)[1][1], entered + timedelta(days=3))
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.reminders_sent, status.dormant, status.next_reminder_at) == (2, True, None)
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.NEEDS_OPERATOR) is True
        assert described.typed_search_attributes.get(sa.REMINDER_COUNT) == 2
        assert described.typed_search_attributes.get(sa.STAGE) == "awaiting_consent"

        # The cap: a month later, still two.
        await skip_to(ts_clock, entered + timedelta(days=30))
        assert len(reminders(mails)) == 2

        # Revival: the dormant customer acts, the journey goes on and is unflagged.
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        status = await wait_stage(handle, Stage.AWAITING_APPLICATION)
        assert (status.dormant, status.reminders_sent) == (False, 0)
        assert status.next_reminder_at == status.stage_entered_at + timedelta(days=1)
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.NEEDS_OPERATOR) is False
        assert described.typed_search_attributes.get(sa.STAGE) == "awaiting_application"
        assert described.typed_search_attributes.get(sa.STAGE_ENTERED_AT) == (
            status.stage_entered_at
        )

        await skip_to(ts_clock, status.stage_entered_at + timedelta(days=1, minutes=1))
        await eventually(lambda: "application" in reminded_for(mails))
        # A reminder beyond the cap would have come before this one.
        assert reminded_for(mails) == ["consent", "consent", "application"]


async def test_the_awaited_step_stops_the_reminders(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    policy = ReminderPolicy.model_validate({"delays": ["P2D"]})
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(ts_clock.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id, policy, NO_QUIET)
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        await skip_to(ts_clock, status.stage_entered_at + timedelta(days=1))
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        consented = await wait_stage(handle, Stage.AWAITING_APPLICATION)
        # Past the consent reminder's time: none was sent for consent.
        await skip_to(ts_clock, status.stage_entered_at + timedelta(days=2, hours=1))
        assert reminders(mails) == []
        await skip_to(ts_clock, consented.stage_entered_at + timedelta(days=2, minutes=1))
        await eventually(lambda: "application" in reminded_for(mails))
        # A consent reminder, had one been sent, would have come before this one.
        assert reminded_for(mails) == ["application"]


async def test_a_reminder_due_at_night_waits_for_morning_jst(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    # Quiet hours placed around the first reminder's due time, wherever the clock is.
    now = (await ts_clock.get_current_time()).astimezone(JST)
    due_around = now + timedelta(days=1)
    quiet_start = (due_around - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    quiet_end = (due_around + timedelta(minutes=90)).time().replace(second=0, microsecond=0)
    policy = ReminderPolicy(delays=[timedelta(days=1)])
    quiet = QuietHours(start=quiet_start, end=quiet_end)
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(ts_clock.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id, policy, quiet)
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        naive_due = status.stage_entered_at + timedelta(days=1)
        expected = next_reminder_at(status.stage_entered_at, 0, policy, quiet)
        assert expected is not None and is_quiet(naive_due, quiet)
        assert expected > naive_due + timedelta(minutes=60)
        assert expected.astimezone(JST).time() == quiet_end
        assert status.next_reminder_at == expected

        await skip_to(ts_clock, naive_due + timedelta(minutes=5))
        assert reminders(mails) == []
        await skip_to(ts_clock, expected + timedelta(minutes=1))
        await eventually(lambda: len(reminders(mails)) == 1)
        at = reminders(mails)[0][1]
        assert near(at, expected)
        assert not is_quiet(at, quiet)
