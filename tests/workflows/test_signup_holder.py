"""Knowing the two IDs is not enough: SignupWorkflow with the holder's confirmation and
the wrong-pair lock, on the time-skipping server with the real store and real SMTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from domain.holder import HolderDecision
from domain.signup import (
    BeginRequest,
    GatewayEntry,
    HolderConfirmation,
    RegisterRequest,
    Service,
    SessionRequest,
    SignupStatus,
    SignupView,
)
from store import holder as holder_store
from store.tables import PointsMember
from tests.pii import assert_absent, history_bytes
from tests.workflows.signup_harness import (
    QUICK,
    SETTINGS,
    applied_customer,
    hashed,
    signup_worker,
    start_signup,
    token_in,
)
from tests.workflows.test_signup import mails_to, refused, skip_to, walk_to_confirmation
from workflows.signup import SignupWorkflow

Handle = WorkflowHandle[SignupWorkflow, SignupView]


async def mail_with(sink: MailSink, to: str, subject_part: str, count: int = 1) -> str:
    """The text of the newest such mail, once ``count`` of them have arrived."""
    for _ in range(100):
        found = [m for m in sink.received if m.envelope_to == [to] and subject_part in m.subject]
        if len(found) >= count:
            return found[-1].text
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail {subject_part!r} to {to}")


def holder_token(text: str) -> str:
    [link] = [link for link in text.split() if link.startswith(SETTINGS.holder_confirmation_url)]
    return link.split("#", 1)[1]


def decision(engine: Engine, text: str, confirm: bool) -> HolderDecision:
    facts = holder_store.confirmation_for_token(engine, holder_token(text))
    assert facts is not None
    return HolderDecision(
        confirmation_id=facts.confirmation_id, confirm=confirm, channel="mail_link"
    )


async def test_a_stranger_registers_only_after_the_holder_confirms(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    customer = applied_customer(sqlite_engine)
    stranger = "stranger@example.com"
    async with signup_worker(ts_env.client, sqlite_engine, mail_sink) as settings:
        signup = await start_signup(ts_env.client, settings, sqlite_engine, stranger)
        seq = await walk_to_confirmation(
            signup, mail_sink, stranger, customer.eligible_gateway, customer.eligible_pcs
        )
        view = await signup.query(SignupWorkflow.get_signup)
        assert view.holder_confirmation == HolderConfirmation.PENDING
        assert view.holder_confirmation_expires_at is not None
        assert await refused(
            signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        ) == ("holder_confirmation_pending")

        asked = await mail_with(mail_sink, customer.email, "会員登録の確認のお願い")
        assert customer.eligible_gateway in asked and "s***@example.com" in asked
        assert stranger not in asked
        state = await signup.execute_update(
            SignupWorkflow.decide_holder, decision(sqlite_engine, asked, True)
        )
        assert state.holder_confirmation == HolderConfirmation.CONFIRMED
        # The link is single-use.
        assert await refused(
            signup.execute_update(
                SignupWorkflow.decide_holder, decision(sqlite_engine, asked, False)
            )
        ) == ("confirmation_used")
        await mail_with(mail_sink, stranger, "承認のお知らせ")

        registered = await signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        assert registered.gateway_id == customer.eligible_gateway
        assert (await signup.result()).status == SignupStatus.REGISTERED
        notice = await mail_with(mail_sink, customer.email, "会員登録のお知らせ")
        assert customer.eligible_gateway in notice and "s***@example.com" in notice
        assert "お心当たりのない場合" in notice

        history = history_bytes(await signup.fetch_history())
        assert_absent(history, stranger, "s***@", holder_token(asked), customer.email)


async def test_the_holders_own_address_goes_straight_through_and_is_told(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    customer = applied_customer(sqlite_engine)
    async with signup_worker(ts_env.client, sqlite_engine, mail_sink) as settings:
        signup = await start_signup(ts_env.client, settings, sqlite_engine, customer.email)
        seq = await walk_to_confirmation(
            signup, mail_sink, customer.email, customer.eligible_gateway, customer.eligible_pcs
        )
        view = await signup.query(SignupWorkflow.get_signup)
        assert view.holder_confirmation == HolderConfirmation.NOT_NEEDED
        await signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        notice = await mail_with(mail_sink, customer.email, "会員登録のお知らせ")
        assert f"{customer.email[0]}***@example.com" in notice
        assert mails_to(mail_sink, customer.email, "会員登録の確認のお願い") == 0


async def test_an_unanswered_request_expires_can_be_asked_again_and_declined(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    customer = applied_customer(sqlite_engine)
    stranger = "late-family@example.com"
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        signup = await start_signup(env.client, settings, sqlite_engine, stranger, QUICK)
        seq = await walk_to_confirmation(
            signup, mail_sink, stranger, customer.eligible_gateway, customer.eligible_pcs
        )
        first = await mail_with(mail_sink, customer.email, "会員登録の確認のお願い")
        view = await signup.query(SignupWorkflow.get_signup)
        assert view.holder_confirmation_expires_at is not None
        assert await refused(
            signup.execute_update(SignupWorkflow.ask_holder_again, SessionRequest(seq=seq))
        ) == ("holder_confirmation_pending")

        await skip_to(env, view.holder_confirmation_expires_at - timedelta(seconds=2))
        assert (await signup.query(SignupWorkflow.get_signup)).holder_confirmation == "pending"
        await skip_to(env, view.holder_confirmation_expires_at + timedelta(seconds=1))
        await mail_with(mail_sink, stranger, "承認の有効期限が切れました")
        assert (await signup.query(SignupWorkflow.get_signup)).holder_confirmation == "expired"
        assert await refused(
            signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        ) == ("holder_confirmation_expired")
        assert await refused(
            signup.execute_update(
                SignupWorkflow.decide_holder, decision(sqlite_engine, first, True)
            )
        ) == ("confirmation_expired")

        again = await signup.execute_update(
            SignupWorkflow.ask_holder_again, SessionRequest(seq=seq)
        )
        assert again.holder_confirmation == HolderConfirmation.PENDING
        second = await mail_with(mail_sink, customer.email, "会員登録の確認のお願い", count=2)
        assert holder_token(second) != holder_token(first)
        old = holder_store.confirmation_for_token(sqlite_engine, holder_token(first))
        assert old is not None and old.status == "replaced"

        declined = await signup.execute_update(
            SignupWorkflow.decide_holder, decision(sqlite_engine, second, False)
        )
        assert declined.holder_confirmation == HolderConfirmation.DECLINED
        assert (await signup.result()).status == SignupStatus.HOLDER_DECLINED
        ended = await mail_with(mail_sink, stranger, "手続き終了のお知らせ")
        assert customer.email not in ended and customer.eligible_gateway not in ended
        with Session(sqlite_engine) as session:
            assert session.exec(select(PointsMember)).all() == []


async def test_wrong_pairs_lock_the_signup_for_good(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    env = ts_clock
    customer = applied_customer(sqlite_engine)
    email = customer.email
    async with signup_worker(env.client, sqlite_engine, mail_sink) as settings:
        signup: Handle = await start_signup(env.client, settings, sqlite_engine, email, QUICK)
        seq = await walk_to_confirmation(
            signup, mail_sink, email, customer.eligible_gateway, customer.eligible_pcs
        )
        answers = []
        for n in range(QUICK.gateway_tries):
            entry = GatewayEntry(
                seq=seq, gateway_id=customer.eligible_gateway, pcs_serial=f"BAD0000{n}"
            )
            answers.append(
                await refused(signup.execute_update(SignupWorkflow.enter_gateway, entry))
            )
        assert answers == ["gateway_not_applied"] * (QUICK.gateway_tries - 1) + ["signup_locked"]
        right = GatewayEntry(
            seq=seq, gateway_id=customer.eligible_gateway, pcs_serial=customer.eligible_pcs
        )
        assert await refused(signup.execute_update(SignupWorkflow.enter_gateway, right)) == (
            "signup_locked"
        )
        # The gateway matched before the lock, but a locked signup does not register.
        assert await refused(
            signup.execute_update(SignupWorkflow.register, RegisterRequest(seq=seq))
        ) == ("signup_locked")
        assert (await signup.query(SignupWorkflow.get_signup)).gateway_entry_locked

        # A new link does not unlock it.
        await env.sleep(timedelta(minutes=2))
        await signup.execute_update(SignupWorkflow.request_link)
        await mail_sink.wait_for(2)
        begun = await signup.execute_update(
            SignupWorkflow.begin,
            BeginRequest(
                token_sha256=hashed(token_in(mail_sink, email)), service=Service.OMRON_MONITORING
            ),
        )
        right2 = right.model_copy(update={"seq": begun.seq})
        assert await refused(signup.execute_update(SignupWorkflow.enter_gateway, right2)) == (
            "signup_locked"
        )
        # Not urged on by the idle reminder; abandoned after the policy's time.
        await env.sleep(QUICK.abandon_after + timedelta(minutes=5))
        assert (await signup.result()).status == SignupStatus.ABANDONED
        assert mails_to(mail_sink, email, "完了していません") == 0
