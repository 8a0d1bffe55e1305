"""The life of a journey between the steps (issue 7): re-joining after 解約, a terms
revision while a journey waits, and continue-as-new keeping the state and the reminders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.enrollment import (
    ApplyRequest,
    CancelRequest,
    ConsentRequest,
    GatewayChanged,
    GatewayEventKind,
    GatewayReason,
    PointsRegistered,
    ReminderPolicy,
    Stage,
)
from domain.errors import ErrorCode
from domain.jst import QuietHours
from domain.mail import MailKind
from domain.terms import TermsDocument
from journey_terms import RUNNING_JOURNEYS, announce_terms
from store import gateway_events as events_store
from store.tables import Consent
from tests.factories import Customer, add_customer, add_points_member, random_id
from tests.history import closed_mail_activities, kinds, mail_activities, run_histories
from tests.waiting import eventually
from tests.workflows.harness import TERMS, MailRecorder, near, running_worker, wait_stage
from tests.workflows.test_enrollment_flow import refused
from workflows.enrollment import PATCH_CONTINUE_AS_NEW, EnrollmentWorkflow

NO_QUIET = QuietHours(start=time(0, 0), end=time(0, 0))
REVISED = TermsDocument(
    document=TERMS.document,
    version="2026-04-01",
    content_sha256="cd" * 32,
    url="https://example.invalid/terms-2026",
)


def ledger(engine: Engine, account_id: str) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Consent).where(Consent.account_id == account_id).order_by(col(Consent.id))
        ).all()
    return [(row.version, row.content_sha256, row.decision) for row in rows]


async def enroll_then_withdraw(journeys: object, customer: Customer) -> None:
    handle = await journeys.start(customer.account_id)  # type: ignore[attr-defined]
    await wait_stage(handle, Stage.AWAITING_CONSENT)
    await handle.execute_update(
        EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
    )
    await handle.execute_update(
        EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
    )
    await handle.signal(
        EnrollmentWorkflow.points_registered,
        PointsRegistered(gateway_id=customer.eligible_gateway, registered_at=datetime.now(UTC)),
    )
    await wait_stage(handle, Stage.ENROLLED)
    await handle.execute_update(
        EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=customer.eligible_gateway)
    )
    assert (await handle.result()).stage == Stage.WITHDRAWN


async def test_rejoining_points_member_goes_straight_back_to_enrolled(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    # On the dev server: awaiting the first run's result on the time-skipping one lets the
    # clock jump past the second run's timers.
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(dev_env.client, sqlite_engine, mails) as journeys:
        await enroll_then_withdraw(journeys, customer)
        # The points membership outlives the circle application (解約 leaves it active).
        add_points_member(sqlite_engine, customer)

        again = await journeys.start(customer.account_id)
        await wait_stage(again, Stage.AWAITING_CONSENT)
        await again.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        receipt = await again.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        assert receipt.gateway_id == customer.eligible_gateway
        status = await again.query(EnrollmentWorkflow.get_status)
        assert status.stage == Stage.ENROLLED
        assert status.points_member_gateway_id == customer.eligible_gateway
        assert status.next_reminder_at is None  # no reminder to sign up again

        # Each run has its own invitation: the outbox would have dropped a reused key.
        await eventually(lambda: len(mails.of_kind(MailKind.INVITATION)) == 2)
        keys = [req.key for req, _ in mails.of_kind(MailKind.INVITATION)]
        assert len(set(keys)) == 2
        first_run = journeys.handles[0].first_execution_run_id
        second_run = again.first_execution_run_id
        assert first_run and second_run
        assert keys == [
            f"enrollment-{customer.account_id}:{first_run}:invitation",
            f"enrollment-{customer.account_id}:{second_run}:invitation",
        ]
        # Both consents are in the ledger (the second is not taken for a retry of the first).
        assert (
            ledger(sqlite_engine, customer.account_id)
            == [(TERMS.version, TERMS.content_sha256, "agreed")] * 2
        )


async def test_cancelled_points_membership_cannot_rejoin(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    add_points_member(sqlite_engine, customer, status="cancelled")
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        code = await refused(
            handle.execute_update(
                EnrollmentWorkflow.apply_gateway,
                ApplyRequest(gateway_id=customer.eligible_gateway),
            )
        )
        assert code == ErrorCode.POINTS_MEMBERSHIP_CANCELLED
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert status.stage == Stage.AWAITING_APPLICATION
        assert all(g.application.value == "none" for g in status.gateways)


async def test_consent_moves_a_waiting_journey_to_the_revised_terms(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id)  # started under TERMS
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        # Without the current terms the journey knows only its own version.
        assert (
            await refused(
                handle.execute_update(
                    EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=REVISED.version)
                )
            )
            == ErrorCode.TERMS_VERSION_OUTDATED
        )
        # A customer still holding the old version must read the revised one first.
        assert (
            await refused(
                handle.execute_update(
                    EnrollmentWorkflow.give_consent,
                    ConsentRequest(terms_version=TERMS.version, current_terms=REVISED),
                )
            )
            == ErrorCode.TERMS_VERSION_OUTDATED
        )
        result = await handle.execute_update(
            EnrollmentWorkflow.give_consent,
            ConsentRequest(terms_version=REVISED.version, current_terms=REVISED),
        )
        assert result.stage == Stage.AWAITING_APPLICATION
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert status.circle_terms_version == REVISED.version
        # The ledger records the version (and text) this consent was for.
        assert ledger(sqlite_engine, customer.account_id) == [
            (REVISED.version, REVISED.content_sha256, "agreed")
        ]


async def test_continue_as_new_keeps_the_state_and_the_pending_reminders(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    policy = ReminderPolicy.model_validate({"delays": ["P1D", "P3D"]})
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(ts_clock.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(
            customer.account_id, policy, NO_QUIET, continue_as_new_after_events=10
        )
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        entered = status.stage_entered_at
        first_run = handle.first_execution_run_id

        async def continued() -> str | None:
            run_id = (await handle.describe()).run_id
            return run_id if run_id != first_run else None

        await eventually(continued, what="a continued run")
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.stage, status.stage_entered_at) == (Stage.AWAITING_CONSENT, entered)
        assert status.next_reminder_at == entered + timedelta(days=1)

        # The reminders fire in the later runs, at the times counted from the first.
        now = await ts_clock.get_current_time()
        await ts_clock.sleep(entered + timedelta(days=1, minutes=1) - now)
        await eventually(lambda: len(mails.of_kind(MailKind.REMINDER)) == 1)
        now = await ts_clock.get_current_time()
        await ts_clock.sleep(entered + timedelta(days=3, minutes=1) - now)
        await eventually(lambda: len(mails.of_kind(MailKind.REMINDER)) == 2)
        sent = mails.of_kind(MailKind.REMINDER)
        assert near(sent[0][1], entered + timedelta(days=1))
        assert near(sent[1][1], entered + timedelta(days=3))
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.reminders_sent, status.dormant, status.next_reminder_at) == (2, True, None)
        # One journey, one key prefix across its runs: the invitation was sent once.
        prefix = f"enrollment-{customer.account_id}:{first_run}:"
        assert all(req.key.startswith(prefix) for req, _ in mails.calls)
        assert len(mails.of_kind(MailKind.INVITATION)) == 1
        # The chain's histories (tests/history.py reads every run) record the same mails.
        assert len(await run_histories(handle)) >= 2
        assert kinds(await mail_activities(handle)) == [
            MailKind.INVITATION,
            MailKind.REMINDER,
            MailKind.REMINDER,
        ]

        # The customer can still answer in the latest run.
        result = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        assert result.stage == Stage.AWAITING_APPLICATION


def events_of(run: list[HistoryEvent], kind: EventType.ValueType) -> list[HistoryEvent]:
    return [e for e in run if e.event_type == kind]


def patch_markers(run: list[HistoryEvent], patch_id: str) -> list[HistoryEvent]:
    """The markers ``workflow.patched(patch_id)`` recorded (not local activities' markers)."""
    found = []
    for event in events_of(run, MARKER):
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch" and "patch-data" in marker.details:
            [data] = marker.details["patch-data"].payloads
            if json.loads(data.data)["id"] == patch_id:
                found.append(event)
    return found


CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED


async def test_an_enrolled_journey_continues_as_new_once_and_keeps_its_state(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """At least after enrollment: the years an enrolled journey lives start from a short
    history. The run continues only once its handlers and mails have finished: an update
    that comes while it drains is answered by it, one after by the next run.

    On the dev server: the time-skipping one loses a query sent while a run continues
    (tests/workflows/test_enrollment_flow.py says how that was checked)."""
    customer = add_customer(sqlite_engine, second_eligible=True)
    mails = MailRecorder(hold=frozenset({MailKind.APPLICATION_COMPLETE}))
    async with running_worker(dev_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        first_run = handle.first_execution_run_id
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        await handle.signal(
            EnrollmentWorkflow.points_registered,
            PointsRegistered(gateway_id=customer.eligible_gateway, registered_at=datetime.now(UTC)),
        )
        enrolled = await wait_stage(handle, Stage.ENROLLED)
        # Its application mail is still in flight, so the run drains: a second 申込確定
        # now is answered by this run, and its mail holds the run too.
        second = await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.other_gateway)
        )
        assert second.gateway_id == customer.other_gateway
        assert (await handle.describe()).run_id == first_run
        mails.release()

        async def continued() -> str | None:
            run_id = (await handle.describe()).run_id
            return run_id if run_id != first_run else None

        second_run = await eventually(continued, what="the enrolled journey's next run")
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.stage, status.stage_entered_at) == (
            Stage.ENROLLED,
            enrolled.stage_entered_at,
        )
        assert status.points_member_gateway_id == customer.eligible_gateway
        assert status.circle_terms_version == TERMS.version
        assert {g.gateway_id for g in status.gateways if g.application.value == "active"} == {
            customer.eligible_gateway,
            customer.other_gateway,
        }
        # The next run publishes where the journey is (operators and the funnel find it).
        attrs = (await handle.describe()).typed_search_attributes
        assert attrs.get(sa.STAGE) == Stage.ENROLLED.value
        assert attrs.get(sa.STAGE_ENTERED_AT) == enrolled.stage_entered_at

        # 解約 of the second gateway now lands on the next run.
        await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.other_gateway),
        )
        first, later = await run_histories(handle)
        assert first[-1].event_type == CONTINUED
        assert len(events_of(first, UPDATE_ACCEPTED)) == 3  # consent and both applications
        assert len(events_of(later, UPDATE_ACCEPTED)) == 1  # the 解約
        assert (await handle.describe()).run_id == second_run
        # Once: the run that starts enrolled does not continue again by itself.
        await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.eligible_gateway),
        )
        assert (await handle.result()).stage == Stage.WITHDRAWN
        runs = await run_histories(handle)
        assert len(runs) == 2 and not events_of(runs[1], CONTINUED)
        # Each mail was asked for once across the two runs, and sent once.
        asked = kinds(await closed_mail_activities(handle))
        assert asked == [
            MailKind.INVITATION,
            MailKind.APPLICATION_COMPLETE,
            MailKind.APPLICATION_COMPLETE,
            MailKind.APPLICATION_CANCELLED,
            MailKind.APPLICATION_CANCELLED,
        ]
        assert [req.kind for req, _ in mails.calls] == asked
        assert len({req.key for req, _ in mails.calls}) == len(asked)


async def test_points_registered_while_a_run_drains_is_carried_into_the_next(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """A run continuing as new for its long history (the cap) waits for its mails; the
    points signup's signal arriving meanwhile moves it to enrolled, and the next run starts
    enrolled (and does not continue again for that)."""
    customer = add_customer(sqlite_engine)
    # Both mails held: whichever workflow task takes the run past the cap (the consent's
    # or the application's, as the timing falls), the run drains until they are released,
    # so the application is answered by it and the signal reaches it while it drains.
    mails = MailRecorder(hold=frozenset({MailKind.INVITATION, MailKind.APPLICATION_COMPLETE}))
    async with running_worker(dev_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id, continue_as_new_after_events=10)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        # The run's own events took it past the cap: it decides to continue (the patch's
        # marker) and drains, held by the mails. The signal is sent only then.

        async def continuing() -> bool:
            current = (await run_histories(handle))[-1]
            return bool(patch_markers(current, PATCH_CONTINUE_AS_NEW))

        await eventually(continuing, what="the decision to continue as new")
        described = await handle.describe()
        draining = described.run_id
        assert described.raw_description.pending_activities
        await handle.signal(
            EnrollmentWorkflow.points_registered,
            PointsRegistered(gateway_id=customer.eligible_gateway, registered_at=datetime.now(UTC)),
        )
        await wait_stage(handle, Stage.ENROLLED)
        assert (await handle.describe()).run_id == draining
        mails.release()

        async def next_run() -> list[list[HistoryEvent]] | None:
            runs = await run_histories(handle)
            started = runs[-1][0].workflow_execution_started_event_attributes
            return runs if started.continued_execution_run_id == draining else None

        runs = await eventually(next_run, what="the run after the draining one")
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert (status.stage, status.points_member_gateway_id) == (
            Stage.ENROLLED,
            customer.eligible_gateway,
        )
        # The signal was handled by the draining run, which then continued: not delivered
        # again, and the next run started enrolled, so it has no reason to continue.
        drained, last = runs[-2], runs[-1]
        assert drained[-1].event_type == CONTINUED
        assert not events_of(last, SIGNALED)
        # It had decided to continue before the signal came: the patch's marker precedes it.
        [decided] = patch_markers(drained, PATCH_CONTINUE_AS_NEW)
        [signalled] = events_of(drained, SIGNALED)
        assert decided.event_id < signalled.event_id
        await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.eligible_gateway),
        )
        assert (await handle.result()).stage == Stage.WITHDRAWN
        assert kinds(await closed_mail_activities(handle)) == [
            MailKind.INVITATION,
            MailKind.APPLICATION_COMPLETE,
            MailKind.APPLICATION_CANCELLED,
        ]


async def test_gateway_changes_recheck_eligibility_flag_and_mail(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(ts_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )

        async def report(inp: events_store.GatewayEventInput) -> None:
            events_store.record_gateway_event(sqlite_engine, inp)
            await handle.signal(
                EnrollmentWorkflow.gateway_changed,
                GatewayChanged(
                    event_id=inp.event_id,
                    kind=inp.kind,
                    gateway_id=inp.gateway_id,
                    new_gateway_id=inp.new_gateway.gateway_id if inp.new_gateway else None,
                ),
            )

        def changed_mails() -> list[dict[str, str]]:
            return [req.context for req, _ in mails.of_kind(MailKind.GATEWAY_CHANGED)]

        async def needs_operator() -> bool | None:
            return (await handle.describe()).typed_search_attributes.get(sa.NEEDS_OPERATOR)

        # 故障交換: the battery unit is no longer in use on the applied gateway.
        units = events_store.GatewayEventInput(
            event_id="ev-1",
            account_id=customer.account_id,
            kind=GatewayEventKind.UNITS_CHANGED,
            gateway_id=customer.eligible_gateway,
            occurred_at=datetime.now(UTC),
            pv_unit_in_use=True,
            battery_unit_in_use=False,
        )
        await report(units)
        await eventually(lambda: len(changed_mails()) == 1, what="the gateway mail")
        assert changed_mails()[0]["change"] == "units_changed"
        assert await eventually(needs_operator, what="EcoNeedsOperator")
        # The same event again (a repeated signal) changes nothing and mails nothing.
        await handle.signal(
            EnrollmentWorkflow.gateway_changed,
            GatewayChanged(
                event_id="ev-1",
                kind=GatewayEventKind.UNITS_CHANGED,
                gateway_id=customer.eligible_gateway,
            ),
        )
        # A gateway without an application is re-checked without a mail.
        await report(
            events_store.GatewayEventInput(
                event_id="ev-2",
                account_id=customer.account_id,
                kind=GatewayEventKind.REMOVED,
                gateway_id=customer.other_gateway,
                occurred_at=datetime.now(UTC),
            )
        )

        async def other_removed() -> bool:
            status = await handle.query(EnrollmentWorkflow.get_status)
            gw = next(g for g in status.gateways if g.gateway_id == customer.other_gateway)
            return GatewayReason.GATEWAY_REMOVED in gw.reasons

        await eventually(other_removed, what="the removed gateway")
        assert len(changed_mails()) == 1

        # Exchanged: the old application ends, the new gateway may be applied for.
        new = events_store.NewGateway(random_id(12), random_id(8), "KPBP-A", True, True)
        await report(
            events_store.GatewayEventInput(
                event_id="ev-3",
                account_id=customer.account_id,
                kind=GatewayEventKind.EXCHANGED,
                gateway_id=customer.eligible_gateway,
                occurred_at=datetime.now(UTC),
                new_gateway=new,
            )
        )
        await eventually(lambda: len(changed_mails()) == 2, what="the exchange mail")
        assert changed_mails()[1] == {
            "change": "exchanged",
            "gateway_id": customer.eligible_gateway,
            "new_gateway_id": new.gateway_id,
        }
        assert not await needs_operator()  # no active application is ineligible now
        receipt = await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=new.gateway_id)
        )
        assert receipt.gateway_id == new.gateway_id


async def test_terms_revision_asks_waiting_journeys_again_and_notifies_members(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    # On the dev server: announce_terms lists running journeys (visibility).
    waiting, member = add_customer(sqlite_engine), add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(dev_env.client, sqlite_engine, mails) as journeys:
        w = await journeys.start(waiting.account_id)
        m = await journeys.start(member.account_id)
        await wait_stage(w, Stage.AWAITING_CONSENT)
        await wait_stage(m, Stage.AWAITING_CONSENT)
        await m.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )

        async def both_listed() -> bool:
            ids = {wf.id async for wf in dev_env.client.list_workflows(RUNNING_JOURNEYS)}
            return {w.id, m.id} <= ids

        await eventually(both_listed, what="both journeys listed")
        assert await announce_terms(dev_env.client, REVISED) >= 2
        await announce_terms(dev_env.client, REVISED)  # again: nothing more is mailed

        def notices(account_id: str) -> list[str]:
            return [
                req.context["audience"]
                for req, _ in mails.of_kind(MailKind.TERMS_REVISED)
                if req.account_id == account_id
            ]

        await eventually(
            lambda: (
                notices(waiting.account_id) == ["consent"]
                and notices(member.account_id) == ["member"]
            ),
            what="one mail to each",
        )
        # The waiting journey now asks for the new version, even without the API's help.
        result = await w.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=REVISED.version)
        )
        assert result.stage == Stage.AWAITING_APPLICATION
        assert ledger(sqlite_engine, waiting.account_id) == [
            (REVISED.version, REVISED.content_sha256, "agreed")
        ]
        # The member's consent stays the one it gave; the journey now shows the new version.
        assert ledger(sqlite_engine, member.account_id) == [
            (TERMS.version, TERMS.content_sha256, "agreed")
        ]
        status = await m.query(EnrollmentWorkflow.get_status)
        assert status.circle_terms_version == REVISED.version
        await w.query(EnrollmentWorkflow.get_status)
        assert len(mails.of_kind(MailKind.TERMS_REVISED)) == 2
