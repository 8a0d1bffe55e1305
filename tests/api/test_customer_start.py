"""``POST /v1/journey``: the start and its answer in one call (update-with-start of
``settle_start``), against a real dev server, worker, SMTP sink and SQLite."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from domain.enrollment import EnrollmentInput, EnrollmentStatus, Stage
from store.engine import make_engine
from tests.api.conftest import Stack, api_beside_stand_in, settings_for
from tests.factories import add_customer
from tests.history import run_histories


async def _updates(stack: Stack, workflow_id: str) -> list[str]:
    """The names of the updates every run of the journey accepted, in order."""
    handle = stack.client.get_workflow_handle(workflow_id)
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for events in await run_histories(handle)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def test_a_start_is_one_call_answered_once_its_row_is_written(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    body = await stack.start_journey(auth)
    assert body["stage"] == "awaiting_consent"
    # The GET right after reads the store's row: it shows what the start answered.
    now = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert now == body
    # The start asked its run once, by the update that came with it; a resume asks again.
    assert await _updates(stack, body["workflow_id"]) == ["settle_start"]
    again = await stack.call("POST", "/v1/journey", headers=auth)
    assert again.json() == body
    assert await _updates(stack, body["workflow_id"]) == ["settle_start", "settle_start"]
    described = await stack.client.get_workflow_handle(body["workflow_id"]).describe()
    assert described.run_id == described.raw_description.workflow_execution_info.first_run_id


async def test_an_ineligible_customer_is_answered_by_the_run_that_ended(stack: Stack) -> None:
    customer = add_customer(stack.engine, holder_type="corporate")
    auth = await stack.login(customer)
    for _ in range(2):  # and again: a new run, ineligible as well (not "journey closing")
        started = await stack.start_journey(auth)
        assert (started["stage"], started["ineligible_reason"]) == (
            "ineligible",
            "corporate_account",
        )
    handle = stack.client.get_workflow_handle(started["workflow_id"])
    assert (await handle.result())["stage"] == "ineligible"
    assert len(await run_histories(handle)) >= 1


async def test_a_start_while_the_last_run_closes_waits_and_starts_anew(stack: Stack) -> None:
    """A declined journey whose run still sends its invitation (the relay deferred it):
    the start finds that run, waits for it to close, and answers with a new run."""
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    stack.sink.handler.scripted_replies.append("451 4.3.0 try again later")
    first = (await stack.call("POST", "/v1/journey", headers=auth)).json()
    handle = stack.client.get_workflow_handle(first["workflow_id"])
    first_run = (await handle.describe()).run_id
    declined = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": False, "terms_version": "2025-03-26"},
    )
    assert declined.json()["stage"] == "declined"
    still_open = await handle.describe()
    assert still_open.run_id == first_run and still_open.close_time is None

    restarted = await stack.start_journey(auth)
    assert restarted["stage"] == "awaiting_consent"
    assert (await handle.describe()).run_id != first_run
    old = stack.client.get_workflow_handle(first["workflow_id"], run_id=first_run)
    assert (await old.result())["stage"] == "declined"


@workflow.defn(name="EnrollmentWorkflow")
class EnrollmentWorkflowWithoutSettleStart:
    """A worker from before ``settle_start`` (a rolling deploy): no such update, no status
    row; it answers ``get_status`` queries."""

    @workflow.run
    async def run(self, inp: EnrollmentInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def get_status(self) -> EnrollmentStatus:
        return EnrollmentStatus(stage=Stage.AWAITING_CONSENT, stage_entered_at=workflow.now())


async def test_a_worker_without_settle_start_still_starts_the_journey(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    settings = settings_for(sqlite_url, mail_sink, workflow_answer_timeout=timedelta(seconds=20))
    engine = make_engine(settings.database_url)
    old_worker = EnrollmentWorkflowWithoutSettleStart
    async with api_beside_stand_in(dev_env.client, settings, engine, old_worker) as http:
        stack = Stack(http, settings, engine, mail_sink, dev_env.client)
        customer = add_customer(engine)
        auth = await stack.login(customer)
        started = await stack.start_journey(auth)
        assert started["stage"] == "awaiting_consent"
        # The account's journey is recorded as for any start (GET finds it, by a query).
        journey = await stack.call("GET", "/v1/journey", headers=auth)
        assert journey.json()["stage"] == "awaiting_consent"
        await dev_env.client.get_workflow_handle(started["workflow_id"]).terminate()
    engine.dispose()
