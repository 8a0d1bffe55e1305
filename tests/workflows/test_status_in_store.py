"""The journey's status row in the store (patch ``status-in-store``), on the time-skipping
server with the real store: it follows every change, an update answers only once the row
shows it, and a store that refuses the row never stops the journey."""

from __future__ import annotations

from datetime import time, timedelta

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from domain.enrollment import (
    ApplyRequest,
    ConsentRequest,
    EnrollmentStatus,
    PublishStatusInput,
    ReminderPolicy,
    Stage,
)
from domain.jst import QuietHours
from store import journey_status
from tests.factories import add_customer
from tests.waiting import eventually
from tests.workflows.harness import TERMS, MailRecorder, running_worker, wait_stage
from workflows.enrollment import EnrollmentWorkflow

NO_QUIET = QuietHours(start=time(0, 0), end=time(0, 0))


def row(engine: Engine, account_id: str) -> EnrollmentStatus:
    published = journey_status.read(engine, account_id)
    assert published is not None, "no status row"
    return published.status


async def test_the_row_follows_each_change_and_updates_answer_after_it(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    policy = ReminderPolicy.model_validate({"delays": ["P1D", "P3D"]})
    async with running_worker(ts_clock.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id, policy, NO_QUIET)
        queried = await wait_stage(handle, Stage.AWAITING_CONSENT)
        await eventually(
            lambda: row(sqlite_engine, customer.account_id).stage == Stage.AWAITING_CONSENT
        )
        assert row(sqlite_engine, customer.account_id) == queried

        # The reminder (a timer, no customer action) reaches the row too.
        await ts_clock.sleep(timedelta(days=1, minutes=1))
        await eventually(lambda: row(sqlite_engine, customer.account_id).reminders_sent == 1)

        agreed = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        # Read-your-writes: no waiting between the update's answer and the row.
        stored = row(sqlite_engine, customer.account_id)
        assert (agreed.stage, stored.stage) == (Stage.AWAITING_APPLICATION,) * 2
        assert stored.reminders_sent == 0

        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        stored = row(sqlite_engine, customer.account_id)
        assert stored.stage == Stage.AWAITING_POINTS_SIGNUP
        assert stored == await handle.query(EnrollmentWorkflow.get_status)


async def test_a_store_that_refuses_the_row_never_stops_the_journey(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    attempts: list[int] = []

    @activity.defn(name="publish_status")
    def refuse(inp: PublishStatusInput) -> bool:
        attempts.append(inp.seq)
        raise RuntimeError("the store is down")

    async with running_worker(
        dev_env.client, sqlite_engine, MailRecorder(), publish_status=refuse
    ) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        agreed = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        assert agreed.stage == Stage.AWAITING_APPLICATION
        assert attempts, "the row was tried"
        assert journey_status.read(sqlite_engine, customer.account_id) is None
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert status.stage == Stage.AWAITING_APPLICATION


async def test_a_journey_that_ends_at_once_leaves_its_last_status(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """Ineligible at the start: the run completes right after entering its last stage,
    and the row shows that stage (the writer finishes before the run does)."""
    customer = add_customer(sqlite_engine, holder_type="corporate")
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id)
        result = await handle.result()
    assert result.stage == Stage.INELIGIBLE
    stored = row(sqlite_engine, customer.account_id)
    assert (stored.stage, stored.ineligible_reason) == (Stage.INELIGIBLE, result.ineligible_reason)
