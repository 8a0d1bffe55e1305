"""Record the EnrollmentWorkflow and SignupWorkflow histories the replay test checks against.

Run ``.venv/bin/python -m tests.replay.record_histories`` after a deliberate, versioned
change to the workflow, and commit the new files beside the old ones: old histories must
keep replaying, because running journeys were recorded by the old code.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from domain import search_attributes as sa
from domain.enrollment import (
    ApplyRequest,
    CancelRequest,
    ConsentRequest,
    EnrollmentInput,
    PointsRegistered,
    ReminderPolicy,
    Stage,
)
from domain.holder import HolderDecision
from domain.ids import enrollment_workflow_id
from domain.jst import QuietHours
from domain.mail import MailKind
from domain.member import ConfirmEmailChange, EmailChangeRequest
from domain.operators import OperatorAction, OperatorOutcome, OperatorRequest
from domain.signup import (
    AgreeRequest,
    BeginRequest,
    CustomerEntry,
    GatewayEntry,
    PresentDocument,
    RegisterRequest,
    Service,
    SessionRequest,
)
from store import holder as holder_store
from store import member as member_store
from store import signup as signup_store
from store.engine import make_engine, migrate
from temporal_client import ensure_search_attributes
from tests.conftest import CONVERTER
from tests.factories import add_customer, add_points_member
from tests.history import completed_mail, run_histories
from tests.waiting import eventually
from tests.workflows.harness import (
    SIGNUP_URL,
    TERMS,
    Journeys,
    MailRecorder,
    running_worker,
    wait_stage,
)
from tests.workflows.signup_harness import (
    INFO,
    SETTINGS,
    applied_customer,
    signup_worker,
    start_signup,
    token_in,
)
from tests.workflows.test_member import add_member
from tests.workflows.test_member import link_token as member_link_token
from tests.workflows.test_member import start as start_member
from tests.workflows.test_signup import walk_to_confirmation
from workflows.enrollment import EnrollmentWorkflow
from workflows.member import MemberWorkflow
from workflows.signup import SignupWorkflow

HERE = Path(__file__).resolve().parent / "histories"
POLICY = ReminderPolicy.model_validate({"delays": ["P1D", "P3D"]})
NO_QUIET = QuietHours(start=time(0, 0), end=time(0, 0))


async def save(name: str, handle: WorkflowHandle[Any, Any]) -> None:
    """Write a history once: existing files are what running workflows were recorded
    with, and must keep replaying; a new scenario or version gets a new name.

    ``RECORD_SUFFIX`` (e.g. ``_v10``) records every scenario again under new names, on
    the code as it is now: after a patch that changes the commands of every run."""
    path = HERE / f"{name}{os.environ.get('RECORD_SUFFIX', '')}.json"
    if path.exists():
        print(f"kept {path.name}")
        return
    path.write_text((await handle.fetch_history()).to_json())
    print(f"recorded {path.name}")


async def wait_enrolled(handle: WorkflowHandle[Any, Any]) -> None:
    """An enrolled journey continues as new at once, and the time-skipping server loses a
    query sent while a run continues (tests/workflows/test_enrollment_flow.py): ask its
    stage only once the next run is there."""

    async def continued() -> bool:
        return (await handle.describe()).run_id != handle.first_execution_run_id

    await eventually(continued, what="the enrolled journey's next run")
    await wait_stage(handle, Stage.ENROLLED)


async def enrolled_then_continued_for_length(
    env: WorkflowEnvironment, journeys: Journeys, engine: Engine
) -> None:
    """A journey enters enrolled below its history cap (60) and continues as new in a
    later workflow task, once its history has passed the cap (recorded: when its
    application mail completed; operator re-checks add events until it does); 解約 in the
    next run: withdrawn. Saved: the run that entered enrolled. Recorded on the code before
    ``continue-after-enrollment``: its ``continue-as-new`` marker is in a later workflow
    task than the enrollment, so the new code must not ask that patch when the run enters
    enrolled (asked then, the answer is False for the rest of the run)."""
    c = add_customer(engine)
    h = await journeys.start(c.account_id, POLICY, NO_QUIET, continue_as_new_after_events=60)
    await wait_stage(h, Stage.AWAITING_CONSENT)
    await h.execute_update(
        EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
    )
    await h.execute_update(
        EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=c.eligible_gateway)
    )
    await h.signal(
        EnrollmentWorkflow.points_registered,
        PointsRegistered(gateway_id=c.eligible_gateway, registered_at=datetime.now(UTC)),
    )

    async def enrolled() -> bool:  # not a query: a run may be continuing (wait_enrolled)
        return (await h.describe()).typed_search_attributes.get(sa.STAGE) == "enrolled"

    await eventually(enrolled, what="EcoStage enrolled")
    first_run = (await h.describe()).run_id
    for _ in range(10):  # each re-check adds some ten events
        await operate(h, OperatorAction.RECHECK_ELIGIBILITY)
        if (await h.describe()).run_id != first_run:
            break
    await h.execute_update(
        EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=c.eligible_gateway)
    )
    await h.result()
    # The run the points signup's signal reached.
    runs = await run_histories(h)
    ids = [h.first_execution_run_id] + [
        r[-1].workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        for r in runs[:-1]
    ]
    [signalled] = [
        run_id
        for run_id, events in zip(ids, runs, strict=True)
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events)
    ]
    signalled_run = env.client.get_workflow_handle(h.id, run_id=signalled)
    await save("enrollment_enrolled_then_continued_for_length", signalled_run)


async def operate(handle: WorkflowHandle[Any, Any], action: OperatorAction) -> None:
    await handle.execute_update(
        "operator_action",
        OperatorRequest(action=action, operator="replay", reason="recorded for replay"),
        result_type=OperatorOutcome,
    )


async def agree_both(s: WorkflowHandle[Any, Any], seq: int) -> None:
    for doc in (SETTINGS.points_terms(), SETTINGS.points_privacy()):
        await s.execute_update(
            SignupWorkflow.present_document, PresentDocument(seq=seq, document=doc.document)
        )
    await s.execute_update(
        SignupWorkflow.agree,
        AgreeRequest(
            seq=seq,
            service_terms_version=SETTINGS.points_terms_version,
            privacy_policy_version=SETTINGS.points_privacy_version,
        ),
    )


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=CONVERTER,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    await ensure_search_attributes(env.client, env.client.namespace)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.sqlite3"
        migrate(url)
        engine = make_engine(url)
        async with running_worker(env.client, engine, MailRecorder()) as journeys:
            # 1. consent, apply two gateways, points joined, cancel both: withdrawn
            c = add_customer(engine, second_eligible=True)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await h.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
            )
            for gw in (c.eligible_gateway, c.other_gateway):
                await h.execute_update(
                    EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=gw)
                )
            await h.signal(
                EnrollmentWorkflow.points_registered,
                PointsRegistered(gateway_id=c.eligible_gateway, registered_at=datetime.now(UTC)),
            )
            await wait_enrolled(h)
            for gw in (c.other_gateway, c.eligible_gateway):
                await h.execute_update(
                    EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=gw)
                )
            await h.result()
            await save("enrollment_withdrawn", h)

            # 2. stalls: both reminders, dormant, then the customer declines
            c = add_customer(engine)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await env.sleep(timedelta(days=4))
            # The history must hold both reminders, sent, before the customer declines.
            await completed_mail(h, MailKind.REMINDER, count=2)
            await h.execute_update(EnrollmentWorkflow.decline)
            await h.result()
            await save("enrollment_dormant_then_declined", h)

            # 3. corporate account: ineligible
            c = add_customer(engine, holder_type="corporate")
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await h.result()
            await save("enrollment_ineligible", h)

            # 3a. (patch run-scoped-keys) re-joining after 解約 as a points member: the
            # second run's keys carry its first run ID; applying goes straight to enrolled
            c = add_customer(engine)
            add_points_member(engine, c)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await h.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
            )
            await h.execute_update(
                EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=c.eligible_gateway)
            )
            await wait_enrolled(h)
            await h.execute_update(
                EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=c.eligible_gateway)
            )
            await h.result()
            await save("enrollment_rejoined_enrolled", h)

            # 3b. (patch continue-as-new) a small cap: the journey continues as new while
            # it waits for consent, a reminder fires in a later run, the customer declines
            c = add_customer(engine)
            h = await journeys.start(
                c.account_id, POLICY, NO_QUIET, continue_as_new_after_events=10
            )
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await env.sleep(timedelta(days=2))

            async def reminded() -> bool:
                return (await h.query(EnrollmentWorkflow.get_status)).reminders_sent == 1

            await eventually(reminded, what="the first reminder")
            await h.execute_update(EnrollmentWorkflow.decline)
            await h.result()
            first = env.client.get_workflow_handle(h.id, run_id=h.first_execution_run_id)
            await save("enrollment_continued_as_new_first_run", first)
            await save("enrollment_continued_as_new_last_run", h)

            # 3c. (patch continue-after-enrollment) consent, apply, points joined: the run
            # that entered enrolled continues as new once; 解約 in the next run: withdrawn
            c = add_customer(engine)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await h.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
            )
            await h.execute_update(
                EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=c.eligible_gateway)
            )
            await h.signal(
                EnrollmentWorkflow.points_registered,
                PointsRegistered(gateway_id=c.eligible_gateway, registered_at=datetime.now(UTC)),
            )
            await wait_enrolled(h)
            await h.execute_update(
                EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=c.eligible_gateway)
            )
            await h.result()
            first = env.client.get_workflow_handle(h.id, run_id=h.first_execution_run_id)
            await save("enrollment_enrolled_continued_first_run", first)
            await save("enrollment_enrolled_continued_last_run", h)

            # 3d. (recorded on the code before continue-after-enrollment)
            await enrolled_then_continued_for_length(env, journeys, engine)

            # 8. (operator actions) resend, dormant, clear_flag, revive, extend, re-check,
            # cancel: the operator_action update and its mails
            c = add_customer(engine)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await operate(h, OperatorAction.RESEND)
            await env.sleep(timedelta(days=4))
            await completed_mail(h, MailKind.REMINDER, count=2)
            for action in (
                OperatorAction.CLEAR_FLAG,
                OperatorAction.REVIVE,
                OperatorAction.EXTEND,
                OperatorAction.RECHECK_ELIGIBILITY,
                OperatorAction.CANCEL,
            ):
                await operate(h, action)
            await h.result()
            await save("enrollment_operator_actions", h)

            # 8. (patch points-member-circle-cancel) the gateway backs a points member:
            # 解約 marks the member suspended and mails them; withdrawn
            c = add_customer(engine)
            h = await journeys.start(c.account_id, POLICY, NO_QUIET)
            await wait_stage(h, Stage.AWAITING_CONSENT)
            await h.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
            )
            await h.execute_update(
                EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=c.eligible_gateway)
            )
            add_member(engine, c)
            await h.execute_update(
                EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=c.eligible_gateway)
            )
            await h.result()
            await save("enrollment_withdrawn_points_suspended", h)

        sink = MailSink().start()
        async with signup_worker(env.client, engine, sink) as settings:
            # 4. a whole points signup, registered (its journey is not running: logged);
            # recorded before the holder's confirmation existed, now under the holder's
            # own address, which needs none
            c = applied_customer(engine)
            s = await start_signup(env.client, settings, engine, c.email)
            seq = await walk_to_confirmation(s, sink, c.email, c.eligible_gateway, c.eligible_pcs)
            await s.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
            await s.result()
            await save("signup_registered", s)

            # 5. a link never used: expired mail, then abandoned
            s = await start_signup(env.client, settings, engine, "replay-idle@example.com")
            await env.sleep(timedelta(days=9))
            await s.result()
            await save("signup_expired_abandoned", s)

            # 9. (patch operator-visibility) search attributes published; the link expires,
            # an operator extends it, resends a new one, then cancels the signup
            s = await start_signup(env.client, settings, engine, "replay-operator@example.com")
            await env.sleep(timedelta(hours=25))
            for action in (OperatorAction.EXTEND, OperatorAction.RESEND, OperatorAction.CANCEL):
                await operate(s, action)
            await s.result()
            await save("signup_operator_actions", s)

            # 6. (patch holder-confirmation) a stranger's address: one wrong pair, the
            # holder is asked, the request expires, asked again, confirmed, registered,
            # and the holder is told
            c = applied_customer(engine)
            stranger = "replay-family@example.com"
            s = await start_signup(env.client, settings, engine, stranger)
            token = token_in(sink, stranger)
            seq = (
                await s.execute_update(
                    SignupWorkflow.begin,
                    BeginRequest(
                        token_sha256=signup_store.token_hash(token),
                        service=Service.OMRON_MONITORING,
                    ),
                )
            ).seq
            await agree_both(s, seq)
            try:
                await s.execute_update(
                    SignupWorkflow.enter_gateway,
                    GatewayEntry(seq=seq, gateway_id=c.eligible_gateway, pcs_serial="WRONG000"),
                )
            except WorkflowUpdateFailedError:
                pass
            await s.execute_update(
                SignupWorkflow.enter_gateway,
                GatewayEntry(seq=seq, gateway_id=c.eligible_gateway, pcs_serial=c.eligible_pcs),
            )
            await s.execute_update(
                SignupWorkflow.enter_customer,
                CustomerEntry(seq=seq, info=INFO, password_hash="$argon2id$replay"),
            )
            await env.sleep(timedelta(hours=25))
            await s.execute_update(SignupWorkflow.ask_holder_again, SessionRequest(seq=seq))
            pending = holder_store.pending_for_account(engine, c.account_id, datetime.now(UTC))
            await s.execute_update(
                SignupWorkflow.decide_holder,
                HolderDecision(
                    confirmation_id=pending[-1].confirmation_id, confirm=True, channel="mail_link"
                ),
            )
            await s.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
            await s.result()
            await save("signup_holder_confirmed", s)

            # 7. (patch holder-confirmation) the holder declines
            c = applied_customer(engine)
            stranger = "replay-stranger@example.com"
            s = await start_signup(env.client, settings, engine, stranger)
            await walk_to_confirmation(s, sink, stranger, c.eligible_gateway, c.eligible_pcs)
            pending = holder_store.pending_for_account(engine, c.account_id, datetime.now(UTC))
            await s.execute_update(
                SignupWorkflow.decide_holder,
                HolderDecision(
                    confirmation_id=pending[-1].confirmation_id,
                    confirm=False,
                    channel="circle_session",
                ),
            )
            await s.result()
            await save("signup_holder_declined", s)

            # 8. links recorded by a local activity, mailed in the background (patch
            #    link-recorded-then-mailed): a second link replaces the first; a mail
            #    that can never be sent flags the signup; expired, then abandoned
            before = len(sink.received)
            s = await start_signup(env.client, settings, engine, "replay-links@example.com")
            await env.sleep(timedelta(minutes=2))
            await s.execute_update(SignupWorkflow.request_link)
            await sink.wait_for(before + 2)  # links 1 and 2
            await asyncio.sleep(1)
            unsendable = await start_signup(
                env.client, settings, engine, "replay-idn@bücher.example", wait_for_mail=False
            )
            await asyncio.sleep(2)
            await env.sleep(timedelta(days=9))
            await s.result()
            await save("signup_links_recorded_then_mailed", s)
            await unsendable.result()
            await save("signup_link_unsendable_abandoned", unsendable)

            # 9. a member's change-of-e-mail link is never used: it expires after 24 h
            member_id, signup_id, _ = add_member(engine)
            m = await start_member(env.client, settings, member_id, signup_id)
            change_id = member_store.record_email_change(
                engine, member_id, "replay-new@example.com", datetime.now(UTC)
            )
            await m.execute_update(
                MemberWorkflow.request_email_change, EmailChangeRequest(change_id=change_id)
            )
            await env.sleep(timedelta(hours=25))
            await m.result()
            await save("member_change_expired", m)

            # 10. a member changes the address by the link, then cancels (退会)
            member_id, signup_id, _ = add_member(engine)
            m = await start_member(env.client, settings, member_id, signup_id)
            new = "replay-moved@example.com"
            change_id = member_store.record_email_change(engine, member_id, new, datetime.now(UTC))
            await m.execute_update(
                MemberWorkflow.request_email_change, EmailChangeRequest(change_id=change_id)
            )
            token = member_link_token(sink, new, 1)
            await m.execute_update(
                MemberWorkflow.confirm_email_change,
                ConfirmEmailChange(
                    change_id=change_id, token_sha256=signup_store.token_hash(token)
                ),
            )
            await m.execute_update(MemberWorkflow.cancel_membership)
            await m.result()
            await save("member_changed_then_cancelled", m)
        sink.stop()
        engine.dispose()
    await env.shutdown()


async def record_on_dev_server() -> None:
    """The histories that need a real dev server: the time-skipping one cannot
    update-with-start, which is how ``POST /v1/journey`` sends ``settle_start``."""
    env = await WorkflowEnvironment.start_local(
        data_converter=CONVERTER,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=sa.ALL,
        dev_server_log_level="error",
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.sqlite3"
        migrate(url)
        engine = make_engine(url)
        async with running_worker(env.client, engine, MailRecorder()) as journeys:

            async def settle_start(account_id: str) -> WorkflowHandle[Any, Any]:
                start = WithStartWorkflowOperation(
                    EnrollmentWorkflow.run,
                    EnrollmentInput(
                        account_id=account_id,
                        circle_terms=TERMS,
                        points_signup_url=SIGNUP_URL,
                        reminders=POLICY,
                        quiet_hours=NO_QUIET,
                    ),
                    id=enrollment_workflow_id(account_id),
                    task_queue=journeys.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )
                await env.client.execute_update_with_start_workflow(
                    EnrollmentWorkflow.settle_start, start_workflow_operation=start
                )
                return await start.workflow_handle()

            # 11. (settle_start) the customer's start answered by its update, a resume
            # asks the run again, then the customer declines
            c = add_customer(engine)
            h = await settle_start(c.account_id)
            await settle_start(c.account_id)
            await h.execute_update(EnrollmentWorkflow.decline)
            await h.result()
            await save("enrollment_settled_start_declined", h)

            # 12. (settle_start) a corporate account: the run ends ineligible, and its
            # settle_start is answered before it does
            c = add_customer(engine, holder_type="corporate")
            h = await settle_start(c.account_id)
            await h.result()
            await save("enrollment_settled_start_ineligible", h)
        engine.dispose()
    await env.shutdown()


async def record_all() -> None:
    await record()
    await record_on_dev_server()


if __name__ == "__main__":
    asyncio.run(record_all())
