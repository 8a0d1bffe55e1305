"""Patch ``status-with-write``: an update's store write carries the journey's status row
(predicted by the workflow), so the update answers after one local activity, not two, and
the row still shows what the workflow shows the moment the update answers, also when the
store answers other than predicted. Time-skipping server, real store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.enrollment import EnrollmentActivities
from domain import search_attributes as sa
from domain.enrollment import (
    ApplyRequest,
    CancelRequest,
    ConsentRequest,
    EnrollmentResult,
    PublishStatusInput,
    Stage,
)
from store import journey_status
from tests.factories import add_customer, add_points_member
from tests.history import local_activity_types
from tests.waiting import eventually
from tests.workflows.harness import TERMS, Journeys, MailRecorder, running_worker, wait_stage
from tests.workflows.test_status_in_store import row
from workflows.enrollment import EnrollmentWorkflow

PUBLISH = "publish_status"


async def awaiting_consent(
    journeys: Journeys, account_id: str
) -> tuple[WorkflowHandle[EnrollmentWorkflow, EnrollmentResult], int]:
    """A journey started and waiting for consent, and how many rows its start published."""
    handle = await journeys.start(account_id)
    await wait_stage(handle, Stage.AWAITING_CONSENT)
    return handle, (await local_activity_types(handle)).count(PUBLISH)


async def test_consent_apply_and_cancel_write_their_row_with_their_write(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, at_start = await awaiting_consent(journeys, customer.account_id)

        agreed = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        stored = row(sqlite_engine, customer.account_id)  # read-your-writes, no waiting
        assert stored == await handle.query(EnrollmentWorkflow.get_status)
        assert (stored.stage, stored.stage_entered_at) == (
            Stage.AWAITING_APPLICATION,
            agreed.consented_at,
        )

        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        stored = row(sqlite_engine, customer.account_id)
        assert stored == await handle.query(EnrollmentWorkflow.get_status)
        assert stored.stage == Stage.AWAITING_POINTS_SIGNUP

        cancelled = await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.eligible_gateway),
        )
        assert cancelled.stage == Stage.WITHDRAWN
        assert row(sqlite_engine, customer.account_id).stage == Stage.WITHDRAWN
        await handle.result()

        types = await local_activity_types(handle)
        # The three updates wrote their rows with their own writes: no publish_status
        # after the start's.
        assert types.count(PUBLISH) == at_start, types
        for write in ("record_consent", "record_application", "cancel_application_carrying_status"):
            assert write in types


async def test_a_store_answer_other_than_predicted_still_leaves_the_right_row(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """Re-joining after 解約: the store finds the household's スマイルeポイント membership
    and the journey goes straight to enrolled, which the workflow did not predict (it
    wrote awaiting_points_signup with the application). The update answers once the
    writer's newer row is there."""
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, _ = await awaiting_consent(journeys, customer.account_id)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        add_points_member(sqlite_engine, customer)
        before = (await local_activity_types(handle)).count(PUBLISH)
        first_run = (await handle.describe()).run_id

        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        stored = row(sqlite_engine, customer.account_id)
        assert stored.stage == Stage.ENROLLED
        assert stored.points_member_gateway_id == customer.eligible_gateway
        assert (await local_activity_types(handle)).count(PUBLISH) == before + 1

        # Enrolled, the run continues as new. The time-skipping server loses a query sent
        # while a run continues (test_enrollment_life.py), so the next run is asked once
        # it runs: it carries the same status, and the row is still the enrolled one.
        async def continued() -> str | None:
            run_id = (await handle.describe()).run_id
            return run_id if run_id != first_run else None

        await eventually(continued, what="the enrolled journey's next run")
        assert await handle.query(EnrollmentWorkflow.get_status) == row(
            sqlite_engine, customer.account_id
        )
        assert row(sqlite_engine, customer.account_id) == stored


async def test_decline_writes_its_row_with_its_write(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, at_start = await awaiting_consent(journeys, customer.account_id)
        declined = await handle.execute_update(EnrollmentWorkflow.decline)
        stored = row(sqlite_engine, customer.account_id)
        assert (stored.stage, stored.stage_entered_at) == (Stage.DECLINED, declined.declined_at)
        await handle.result()
        assert (await local_activity_types(handle)).count(PUBLISH) == at_start


@pytest.mark.parametrize("written_before_failing", [False, True])
async def test_a_row_that_cannot_be_written_never_fails_the_update(
    ts_env: WorkflowEnvironment,
    sqlite_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    written_before_failing: bool,
) -> None:
    """The consent is recorded; its row is not (the store refuses it, or wrote it and the
    answer was lost): the update still answers, and the row, once written, is the
    workflow's."""
    customer = add_customer(sqlite_engine)
    real = journey_status.publish

    def failing(engine: Engine, inp: PublishStatusInput) -> bool:
        if written_before_failing:
            real(engine, inp)
        raise RuntimeError("journey_status unavailable")

    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, _ = await awaiting_consent(journeys, customer.account_id)
        monkeypatch.setattr(journey_status, "publish", failing)
        agreed = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        assert agreed.stage == Stage.AWAITING_APPLICATION
        shown = await handle.query(EnrollmentWorkflow.get_status)
        if written_before_failing:
            assert row(sqlite_engine, customer.account_id) == shown


async def test_a_write_that_failed_after_its_row_leaves_the_workflows_row(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt wrote the consent and the predicted row, then failed (a timeout, say),
    and so did every retry: the update fails, the journey still waits for consent, and
    the row must not keep showing the consent that the journey did not take."""
    customer = add_customer(sqlite_engine)
    real = EnrollmentActivities._publish_with

    def write_then_fail(self: EnrollmentActivities, status: PublishStatusInput | None) -> bool:
        real(self, status)
        raise RuntimeError("the attempt timed out after writing")

    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, _ = await awaiting_consent(journeys, customer.account_id)
        monkeypatch.setattr(EnrollmentActivities, "_publish_with", write_then_fail)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
            )
        shown = await handle.query(EnrollmentWorkflow.get_status)
        assert shown.stage == Stage.AWAITING_CONSENT
        await eventually(lambda: row(sqlite_engine, customer.account_id) == shown)


async def test_a_new_journey_publishes_its_first_status_once_checked(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """Patch ``first-status-after-check``: the start writes one row (the stage after the
    eligibility check) and sets EcoStage once, not ``checking`` first."""
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle, at_start = await awaiting_consent(journeys, customer.account_id)
        assert at_start == 1
        stored = row(sqlite_engine, customer.account_id)
        assert stored is not None and stored.stage == Stage.AWAITING_CONSENT
        stages = [
            json.loads(
                e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields[
                    sa.STAGE.name
                ].data
            )
            for e in (await handle.fetch_history()).events
            if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
            and sa.STAGE.name
            in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        ]
        assert stages == [Stage.AWAITING_CONSENT.value]
