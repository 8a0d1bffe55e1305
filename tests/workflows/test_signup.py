"""SignupWorkflow on the time-skipping server, with the real store and real SMTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from api.security import hash_password
from devtools.mailsink import MailSink
from domain.enrollment import ConsentRequest, Stage
from domain.jst import JST, QuietHours, defer_out_of_quiet_hours, is_quiet
from domain.mail import MailKind
from domain.signup import (
    AgreeRequest,
    BeginRequest,
    CustomerEntry,
    GatewayEntry,
    PresentDocument,
    RegisterRequest,
    Service,
    SignupStatus,
    SignupView,
)
from store import signup as signup_store
from store.tables import Consent, OutboxMail, PointSignup, PointsMember
from tests.factories import add_customer
from tests.history import closed_mail_activities, completed_mail, kinds
from tests.pii import assert_absent, history_bytes
from tests.waiting import eventually, mails
from tests.workflows.harness import TERMS, MailRecorder, running_worker, wait_stage
from tests.workflows.signup_harness import (
    INFO,
    QUICK,
    SETTINGS,
    applied_customer,
    hashed,
    signup_worker,
    start_signup,
    token_in,
)
from workflows.enrollment import EnrollmentWorkflow
from workflows.signup import SignupWorkflow

PASSWORD = "Sm1le-e-Point!"
# How long after its due time a timer's work may be recorded (the test server's clock runs
# on while the worker picks the task up).
SLACK = timedelta(seconds=30)


async def refused(call: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await call  # type: ignore[misc]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type
    return cause.type


async def skip_to(env: WorkflowEnvironment, moment: object) -> None:
    now = await env.get_current_time()
    if moment > now:  # type: ignore[operator]
        await env.sleep(moment - now)  # type: ignore[operator]


def mails_to(sink: MailSink, email: str, subject_part: str) -> int:
    return sum(1 for m in sink.received if m.envelope_to == [email] and subject_part in m.subject)


async def meaningful_events(handle: WorkflowHandle[SignupWorkflow, SignupView]) -> list[int]:
    """The history without workflow-task bookkeeping."""
    history = await handle.fetch_history()
    return [
        e.event_type for e in history.events if "WORKFLOW_TASK" not in EventType.Name(e.event_type)
    ]


async def walk_to_confirmation(
    handle: WorkflowHandle[SignupWorkflow, SignupView],
    sink: MailSink,
    email: str,
    gateway: str,
    pcs: str,
) -> int:
    token = hashed(token_in(sink, email))
    begun = await handle.execute_update(
        SignupWorkflow.begin,
        BeginRequest(token_sha256=token, service=Service.OMRON_MONITORING),
    )
    seq = begun.seq
    for doc in (SETTINGS.points_terms(), SETTINGS.points_privacy()):
        await handle.execute_update(
            SignupWorkflow.present_document, PresentDocument(seq=seq, document=doc.document)
        )
    await handle.execute_update(
        SignupWorkflow.agree,
        AgreeRequest(
            seq=seq,
            service_terms_version=SETTINGS.points_terms_version,
            privacy_policy_version=SETTINGS.points_privacy_version,
        ),
    )
    await handle.execute_update(
        SignupWorkflow.enter_gateway, GatewayEntry(seq=seq, gateway_id=gateway, pcs_serial=pcs)
    )
    await handle.execute_update(
        SignupWorkflow.enter_customer,
        CustomerEntry(seq=seq, info=INFO, password_hash=hash_password(PASSWORD)),
    )
    return seq


async def test_the_link_is_valid_for_24_hours_to_the_second(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        early = await start_signup(env.client, settings, sqlite_engine, "early@example.com", QUICK)
        late = await start_signup(env.client, settings, sqlite_engine, "late@example.com", QUICK)
        await mails(mail_sink, 2)
        early_view = await early.query(SignupWorkflow.get_signup)
        late_view = await late.query(SignupWorkflow.get_signup)
        assert early_view.link_expires_at and late_view.link_expires_at
        assert late_view.link_expires_at - early_view.link_expires_at < timedelta(seconds=5)

        await skip_to(env, early_view.link_expires_at - timedelta(seconds=1))
        begun = await early.execute_update(
            SignupWorkflow.begin,
            BeginRequest(
                token_sha256=hashed(token_in(mail_sink, "early@example.com")),
                service=Service.OMRON_MONITORING,
            ),
        )
        assert begun.seq == 1

        await skip_to(env, late_view.link_expires_at + timedelta(seconds=1))
        late_token = hashed(token_in(mail_sink, "late@example.com"))
        assert await late.query(SignupWorkflow.link_state, late_token) == "link_expired"
        assert (
            await refused(
                late.execute_update(
                    SignupWorkflow.begin,
                    BeginRequest(token_sha256=late_token, service=Service.OMRON_MONITORING),
                )
            )
            == "link_expired"
        )
        await eventually(lambda: mails_to(mail_sink, "late@example.com", "有効期限が切れました"))

        # Never renewed: abandoned after the policy's time, and the address is free again.
        await skip_to(env, late_view.link_expires_at + QUICK.abandon_after + timedelta(minutes=1))
        assert (await late.result()).status == SignupStatus.ABANDONED
        assert signup_store.open_signup(sqlite_engine, "late@example.com").workflow_id != late.id
        # The early one was used, then left idle as long: abandoned too.
        assert (await early.result()).status == SignupStatus.ABANDONED
        # Both have closed, so their histories hold every mail they asked for, and a
        # signup ends only after its mails went out: one expiry mail, to the late one only.
        assert kinds(await closed_mail_activities(late)).count(MailKind.SIGNUP_EXPIRED) == 1
        assert MailKind.SIGNUP_EXPIRED not in kinds(await closed_mail_activities(early))
        assert mails_to(mail_sink, "late@example.com", "有効期限が切れました") == 1
        assert mails_to(mail_sink, "early@example.com", "有効期限が切れました") == 0


async def test_a_new_request_replaces_the_link_and_a_used_token_is_spent(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    email = "replace@example.com"
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        handle = await start_signup(env.client, settings, sqlite_engine, email, QUICK)
        first = hashed(token_in(mail_sink, email))
        before = await meaningful_events(handle)
        assert await refused(handle.execute_update(SignupWorkflow.request_link)) == (
            "resend_too_soon"
        )
        # Refused by the validator: no update accepted, no activity, no mail. (This server
        # records the validating workflow task; a real one drops it: see the API test.)
        assert await meaningful_events(handle) == before
        await env.sleep(timedelta(minutes=2))
        # Entering the address again reaches the same signup (the reservation).
        assert signup_store.open_signup(sqlite_engine, email).workflow_id == handle.id
        await handle.execute_update(SignupWorkflow.request_link)
        await mails(mail_sink, 2)
        second = hashed(token_in(mail_sink, email))
        assert first != second

        assert await handle.query(SignupWorkflow.link_state, first) == "link_replaced"
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.begin,
                    BeginRequest(token_sha256=first, service=Service.OMRON_MONITORING),
                )
            )
            == "link_replaced"
        )
        # The other service is refused, and the token is not spent by that.
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.begin,
                    BeginRequest(token_sha256=second, service=Service.CHIKUDEN_ECO_MEGANE),
                )
            )
            == "service_other_site"
        )
        await handle.execute_update(
            SignupWorkflow.begin,
            BeginRequest(token_sha256=second, service=Service.OMRON_MONITORING),
        )
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.begin,
                    BeginRequest(token_sha256=second, service=Service.OMRON_MONITORING),
                )
            )
            == "link_used"
        )
        assert await handle.query(SignupWorkflow.link_state, "0" * 64) == "link_unknown"

        # The daily cap (3 in this policy).
        await env.sleep(timedelta(minutes=2))
        await handle.execute_update(SignupWorkflow.request_link)
        await env.sleep(timedelta(minutes=2))
        assert await refused(handle.execute_update(SignupWorkflow.request_link)) == ("resend_limit")
        await handle.terminate("test finished")


async def test_an_idle_signup_is_reminded_then_abandoned(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    email = "idle@example.com"
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        handle = await start_signup(env.client, settings, sqlite_engine, email, QUICK)
        before = await env.get_current_time()
        await handle.execute_update(
            SignupWorkflow.begin,
            BeginRequest(
                token_sha256=hashed(token_in(mail_sink, email)), service=Service.OMRON_MONITORING
            ),
        )
        begun_at = await env.get_current_time()
        await skip_to(env, begun_at + QUICK.idle_reminder_after + timedelta(minutes=5))
        # The reminder's own record says when it was asked for: not before it was due.
        [reminder] = await completed_mail(handle, MailKind.SIGNUP_REMINDER)
        assert before + QUICK.idle_reminder_after <= reminder.scheduled_at
        assert reminder.scheduled_at <= begun_at + QUICK.idle_reminder_after + SLACK
        assert mails_to(mail_sink, email, "完了していません") == 1
        # The link expired meanwhile, but a used link does not expire the signup.
        assert (await handle.query(SignupWorkflow.get_signup)).status == "in_progress"

        await skip_to(env, begun_at + QUICK.abandon_after + timedelta(minutes=5))
        assert (await handle.result()).status == SignupStatus.ABANDONED
        assert kinds(await closed_mail_activities(handle)).count(MailKind.SIGNUP_REMINDER) == 1
        assert mails_to(mail_sink, email, "完了していません") == 1
        with Session(sqlite_engine) as session:
            row = session.exec(
                select(PointSignup).where(PointSignup.workflow_id == handle.id)
            ).one()
        assert row.status == "abandoned"


async def test_a_whole_signup_registers_one_member_and_enrolls_the_journey(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    # On the real dev server: nothing here skips time, and on a time-skipping server the
    # clock may jump to the next timer anywhere as soon as an awaited result() is in,
    # which once timed the still-running journey out (its 10-year execution timeout).
    env = dev_env
    customer = add_customer(sqlite_engine)  # the journey below applies for the gateway
    email = (
        customer.email
    )  # the holder's own: no confirmation (tests/workflows/test_signup_holder.py)
    async with (
        running_worker(env.client, sqlite_engine, MailRecorder()) as journeys,
        signup_worker(env.client, sqlite_engine, mail_sink) as settings,
    ):
        journey = await journeys.start(customer.account_id)
        await wait_stage(journey, Stage.AWAITING_CONSENT)
        await journey.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        from domain.enrollment import ApplyRequest

        await journey.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        await wait_stage(journey, Stage.AWAITING_POINTS_SIGNUP)
        # the journey's workflow ID is the one the signup signals
        signup = await start_signup(env.client, settings, sqlite_engine, email)
        seq = await walk_to_confirmation(
            signup, mail_sink, email, customer.eligible_gateway, customer.eligible_pcs
        )
        view = await signup.query(SignupWorkflow.get_signup)
        assert view.password == "********" and view.info == INFO
        assert view.gateway_id == customer.eligible_gateway

        first, second = await asyncio.gather(
            signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq)),
            signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq)),
        )
        assert first == second
        assert (await signup.result()).status == SignupStatus.REGISTERED
        with Session(sqlite_engine) as session:
            members = session.exec(select(PointsMember)).all()
            ledger = session.exec(select(Consent).where(Consent.channel == "points_signup")).all()
        assert [(m.email, m.gateway_id, m.phone) for m in members] == [
            (email, customer.eligible_gateway, "06-1234-5678")
        ]
        assert PASSWORD not in members[0].password_hash
        assert sorted(c.document for c in ledger) == [
            "smile_e_point_privacy",
            "smile_e_point_terms",
        ]

        # The signup has closed (above), and it closes only after its mails went out.
        assert kinds(await closed_mail_activities(signup)) == [MailKind.SIGNUP_COMPLETE]
        [complete] = [m for m in mail_sink.received if "会員登録完了のお知らせ" in m.subject]
        assert "笑顔 太郎 様" in complete.text
        assert f"ゲートウェイID: {customer.eligible_gateway}" in complete.text
        assert f"パワーコンディショナ製造番号: {customer.eligible_pcs}" in complete.text
        assert SETTINGS.points_login_url in complete.links
        assert SETTINGS.points_terms_url in complete.text

        status = await wait_stage(journey, Stage.ENROLLED)
        assert status.points_member_gateway_id == customer.eligible_gateway

        history = history_bytes(await signup.fetch_history())
        assert_absent(history, email, PASSWORD, "1234-5678", "笑顔", token_in(mail_sink, email))

        # The same gateway cannot back a second membership; the member's address cannot
        # sign up again (the mail says so, the screen does not).
        other = await start_signup(env.client, settings, sqlite_engine, "other@example.com")
        seq2 = (
            await other.execute_update(
                SignupWorkflow.begin,
                BeginRequest(
                    token_sha256=hashed(token_in(mail_sink, "other@example.com")),
                    service=Service.OMRON_MONITORING,
                ),
            )
        ).seq
        for doc in (SETTINGS.points_terms(), SETTINGS.points_privacy()):
            await other.execute_update(
                SignupWorkflow.present_document,
                PresentDocument(seq=seq2, document=doc.document),
            )
        await other.execute_update(
            SignupWorkflow.agree,
            AgreeRequest(
                seq=seq2,
                service_terms_version=SETTINGS.points_terms_version,
                privacy_policy_version=SETTINGS.points_privacy_version,
            ),
        )
        assert (
            await refused(
                other.execute_update(
                    SignupWorkflow.enter_gateway,
                    GatewayEntry(
                        seq=seq2,
                        gateway_id=customer.eligible_gateway,
                        pcs_serial=customer.eligible_pcs,
                    ),
                )
            )
            == "gateway_already_member"
        )
        await other.terminate("test finished")

        again = await start_signup(env.client, settings, sqlite_engine, email)
        assert (await again.result()).status == SignupStatus.ALREADY_MEMBER
        assert kinds(await closed_mail_activities(again)) == [MailKind.SIGNUP_ALREADY_MEMBER]
        assert mails_to(mail_sink, email, "会員登録についてのお知らせ") == 1
        await journey.terminate("test finished")


async def test_step_refusals(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    customer = applied_customer(sqlite_engine)
    email = "steps@example.com"
    async with signup_worker(ts_env.client, sqlite_engine, mail_sink) as settings:
        handle = await start_signup(ts_env.client, settings, sqlite_engine, email)
        seq = (
            await handle.execute_update(
                SignupWorkflow.begin,
                BeginRequest(
                    token_sha256=hashed(token_in(mail_sink, email)),
                    service=Service.OMRON_MONITORING,
                ),
            )
        ).seq
        agree = AgreeRequest(
            seq=seq,
            service_terms_version=SETTINGS.points_terms_version,
            privacy_policy_version=SETTINGS.points_privacy_version,
        )
        assert await refused(handle.execute_update(SignupWorkflow.agree, agree)) == (
            "documents_not_presented"
        )
        await handle.execute_update(
            SignupWorkflow.present_document,
            PresentDocument(seq=seq, document=SETTINGS.points_terms().document),
        )
        assert await refused(handle.execute_update(SignupWorkflow.agree, agree)) == (
            "documents_not_presented"
        )
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.enter_gateway,
                    GatewayEntry(
                        seq=seq,
                        gateway_id=customer.eligible_gateway,
                        pcs_serial=customer.eligible_pcs,
                    ),
                )
            )
            == "signup_incomplete"
        )
        await handle.execute_update(
            SignupWorkflow.present_document,
            PresentDocument(seq=seq, document=SETTINGS.points_privacy().document),
        )
        await handle.execute_update(SignupWorkflow.agree, agree)
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.enter_gateway,
                    GatewayEntry(
                        seq=seq, gateway_id=customer.eligible_gateway, pcs_serial="ZZZZZZZZ"
                    ),
                )
            )
            == "gateway_not_applied"
        )
        assert (
            await refused(
                handle.execute_update(
                    SignupWorkflow.enter_gateway,
                    GatewayEntry(seq=seq, gateway_id=customer.other_gateway, pcs_serial="ZZZZZZZZ"),
                )
            )
            == "gateway_not_applied"
        )
        assert (
            await refused(handle.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq)))
            == "signup_incomplete"
        )
        assert (
            await refused(
                handle.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq + 1))
            )
            == "session_invalid"
        )
        await handle.terminate("test finished")


async def test_the_idle_reminder_waits_for_morning_jst(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    email = "night@example.com"
    # Quiet hours placed around the reminder's due time, wherever the clock is.
    due_around = (await env.get_current_time()).astimezone(JST) + QUICK.idle_reminder_after
    policy = QUICK
    quiet = QuietHours(
        start=(due_around - timedelta(minutes=30)).time().replace(second=0, microsecond=0),
        end=(due_around + timedelta(minutes=90)).time().replace(second=0, microsecond=0),
    )
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        handle = await start_signup(env.client, settings, sqlite_engine, email, policy, quiet)
        before = await env.get_current_time()
        await handle.execute_update(
            SignupWorkflow.begin,
            BeginRequest(
                token_sha256=hashed(token_in(mail_sink, email)), service=Service.OMRON_MONITORING
            ),
        )
        begun_at = await env.get_current_time()
        naive_due = begun_at + policy.idle_reminder_after
        assert is_quiet(naive_due, quiet) and is_quiet(before + policy.idle_reminder_after, quiet)
        morning = defer_out_of_quiet_hours(naive_due, quiet)
        assert morning > naive_due + timedelta(minutes=60)
        await skip_to(env, morning + timedelta(minutes=5))
        # The reminder's own record says when it was asked for: at the end of the quiet
        # hours, not when it was first due.
        [reminder] = await completed_mail(handle, MailKind.SIGNUP_REMINDER)
        assert morning <= reminder.scheduled_at <= morning + SLACK
        assert not is_quiet(reminder.scheduled_at, quiet)
        assert mails_to(mail_sink, email, "完了していません") == 1
        await handle.terminate("test finished")


async def test_a_signup_whose_mail_can_never_be_sent_is_still_abandoned_on_time(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """A non-ASCII address (the relay cannot take it): the mail fails for good at once,
    the signup says it needs an operator, and its timers still run (before: the update
    retried the send forever, holding the lock the abandonment needs)."""
    env = ts_clock
    email = "idn@bücher.example"
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        async with asyncio.timeout(30):  # the update answers once the link is recorded
            handle = await start_signup(
                env.client, settings, sqlite_engine, email, QUICK, wait_for_mail=False
            )
        view = await handle.query(SignupWorkflow.get_signup)
        assert view.link_seq == 1 and view.link_expires_at is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not (await handle.query(SignupWorkflow.get_signup)).needs_operator:
            assert loop.time() < deadline, "the signup was not flagged"
            await asyncio.sleep(0.05)
        with Session(sqlite_engine) as session:
            [row] = session.exec(select(OutboxMail).where(OutboxMail.kind == "signup_link")).all()
        assert (row.status, row.attempts, row.last_error) == ("failed", 1, "UnicodeEncodeError")

        await skip_to(env, view.link_expires_at + QUICK.abandon_after + timedelta(minutes=1))
        result = await handle.result()
        assert result.status == SignupStatus.ABANDONED and result.needs_operator
        with Session(sqlite_engine) as session:
            signup = session.exec(
                select(PointSignup).where(PointSignup.workflow_id == handle.id)
            ).one()
        assert signup.status == "abandoned"
        assert mail_sink.received == []


async def test_a_signup_under_way_agrees_to_the_documents_served_now(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """Issue 7: the two documents were revised after this signup started. The agreement is
    to the versions the API serves now (the old ones are refused), and the consent ledger
    records those at registration."""
    customer = applied_customer(sqlite_engine)
    email = customer.email  # the holder's own address: no confirmation needed
    revised = [
        doc.model_copy(update={"version": "2026-04-01", "content_sha256": "9" * 64})
        for doc in (SETTINGS.points_terms(), SETTINGS.points_privacy())
    ]
    async with signup_worker(ts_env.client, sqlite_engine, mail_sink) as settings:
        handle = await start_signup(ts_env.client, settings, sqlite_engine, email)
        seq = (
            await handle.execute_update(
                SignupWorkflow.begin,
                BeginRequest(
                    token_sha256=hashed(token_in(mail_sink, email)),
                    service=Service.OMRON_MONITORING,
                ),
            )
        ).seq
        for doc in revised:
            await handle.execute_update(
                SignupWorkflow.present_document, PresentDocument(seq=seq, document=doc.document)
            )

        def agreement(version: str) -> AgreeRequest:
            return AgreeRequest(
                seq=seq,
                service_terms_version=version,
                privacy_policy_version=version,
                current_service_terms=revised[0],
                current_privacy_policy=revised[1],
            )

        old = agreement(SETTINGS.points_terms_version)
        assert await refused(handle.execute_update(SignupWorkflow.agree, old)) == (
            "terms_version_outdated"
        )
        await handle.execute_update(SignupWorkflow.agree, agreement("2026-04-01"))
        await handle.execute_update(
            SignupWorkflow.enter_gateway,
            GatewayEntry(
                seq=seq, gateway_id=customer.eligible_gateway, pcs_serial=customer.eligible_pcs
            ),
        )
        await handle.execute_update(
            SignupWorkflow.enter_customer,
            CustomerEntry(seq=seq, info=INFO, password_hash=hash_password(PASSWORD)),
        )
        await handle.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        with Session(sqlite_engine) as session:
            agreed = {
                (row.document, row.version)
                for row in session.exec(
                    select(Consent).where(Consent.account_id == customer.account_id)
                )
                if row.document.startswith("smile_e_point")
            }
        assert agreed == {(doc.document, "2026-04-01") for doc in revised}
        await handle.terminate("test finished")
