"""MemberWorkflow on the time-skipping server with the real worker, store and SMTP sink:
the change-of-e-mail link's 24 h timer, its replacement, and 退会."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from config import Settings
from devtools.mailsink import MailSink
from domain.ids import member_workflow_id
from domain.member import (
    ConfirmEmailChange,
    EmailChangeRequest,
    MemberInput,
    MemberPolicy,
)
from store import member as member_store
from store import signup as signup_store
from store.tables import MemberEmailChange, PointsMember
from tests.factories import Customer
from tests.waiting import eventually
from tests.workflows.signup_harness import applied_customer, signup_worker
from workflows.member import MemberWorkflow

TTL = timedelta(hours=24)


def add_member(engine: Engine, customer: Customer | None = None) -> tuple[int, str, str]:
    """(member ID, signup ID, address) of a registered member on the customer's eligible
    gateway (rows as registration leaves them; registration is tested in test_signup.py)."""
    customer = customer or applied_customer(engine)
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    ticket = signup_store.open_signup(engine, email)
    with Session(engine) as session:
        member = PointsMember(
            signup_id=ticket.signup_id,
            email=email,
            gateway_id=customer.eligible_gateway,
            account_id=customer.account_id,
            service="omron_monitoring",
            name="笑顔 太郎",
            furigana="エガオ タロウ",
            postal_code="530-0001",
            prefecture="大阪府",
            address="大阪市北区梅田1-2-3",
            phone="06-1234-5678",
            password_hash="$argon2id$test",
            status="active",
            registered_at=datetime.now(UTC),
        )
        session.add(member)
        session.commit()
        assert member.id is not None
        return member.id, ticket.signup_id, email


async def start(
    client: Client, settings: Settings, member_id: int, signup_id: str
) -> WorkflowHandle[MemberWorkflow, None]:
    # The API uses update-with-start; the time-skipping server lacks it: start, then update.
    return await client.start_workflow(
        MemberWorkflow.run,
        MemberInput(member_id=member_id, policy=MemberPolicy(link_ttl=TTL)),
        id=member_workflow_id(signup_id),
        task_queue=settings.task_queue,
    )


def change(engine: Engine, change_id: str) -> MemberEmailChange:
    with Session(engine) as session:
        row = session.get(MemberEmailChange, change_id)
        assert row is not None
        return row


def link_token(sink: MailSink, address: str, count: int) -> str:
    links = [
        link
        for m in sink.received
        if m.envelope_to == [address] and "変更の確認" in m.subject
        for link in m.links
        if "#" in link
    ]
    assert len(links) == count
    return links[-1].split("#", 1)[1]


async def test_the_change_link_expires_after_24_hours_and_the_run_ends(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    member_id, signup_id, _ = add_member(sqlite_engine)
    async with signup_worker(ts_clock.client, sqlite_engine, mail_sink) as settings:
        handle = await start(ts_clock.client, settings, member_id, signup_id)
        new = "new-address@example.com"
        change_id = member_store.record_email_change(
            sqlite_engine, member_id, new, datetime.now(UTC)
        )
        issued = await handle.execute_update(
            MemberWorkflow.request_email_change, EmailChangeRequest(change_id=change_id)
        )
        await mail_sink.wait_for(1)
        token = link_token(mail_sink, new, 1)
        assert change(sqlite_engine, change_id).status == "pending"
        await ts_clock.sleep(TTL - timedelta(minutes=1))
        assert change(sqlite_engine, change_id).status == "pending"  # not a minute early
        await ts_clock.sleep(timedelta(minutes=2))
        # the timer fired within those two minutes (time stands still outside sleep and
        # result, so a later timer would leave the row pending here)
        await eventually(
            lambda: change(sqlite_engine, change_id).status == "expired", what="expired row"
        )
        await handle.result()  # nothing left to wait for: the run ends
        row = change(sqlite_engine, change_id)
        assert row.status == "expired" and row.expires_at is not None
        assert abs(issued.expires_at - (row.expires_at.replace(tzinfo=UTC))) < timedelta(seconds=1)
        # a confirmation after the run ended starts a new run, which the store refuses
        again = await start(ts_clock.client, settings, member_id, signup_id)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await again.execute_update(
                MemberWorkflow.confirm_email_change,
                ConfirmEmailChange(
                    change_id=change_id, token_sha256=signup_store.token_hash(token)
                ),
            )
        assert getattr(err.value.cause, "type", None) == "email_change_expired"
        assert member_store.member_record(sqlite_engine, member_id).email != new  # type: ignore[union-attr]


async def test_a_newer_request_replaces_the_link_and_its_timer(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    member_id, signup_id, old = add_member(sqlite_engine)
    async with signup_worker(ts_clock.client, sqlite_engine, mail_sink) as settings:
        handle = await start(ts_clock.client, settings, member_id, signup_id)
        new = "newer-address@example.com"
        first = member_store.record_email_change(sqlite_engine, member_id, new, datetime.now(UTC))
        await handle.execute_update(
            MemberWorkflow.request_email_change, EmailChangeRequest(change_id=first)
        )
        await ts_clock.sleep(timedelta(hours=12))
        second = member_store.record_email_change(sqlite_engine, member_id, new, datetime.now(UTC))
        await handle.execute_update(
            MemberWorkflow.request_email_change, EmailChangeRequest(change_id=second)
        )
        await mail_sink.wait_for(2)
        token = link_token(mail_sink, new, 2)
        assert change(sqlite_engine, first).status == "replaced"
        # 13 h later the first link's time is past, the second's is not: still usable
        await ts_clock.sleep(timedelta(hours=13))
        assert change(sqlite_engine, second).status == "pending"
        done = await handle.execute_update(
            MemberWorkflow.confirm_email_change,
            ConfirmEmailChange(change_id=second, token_sha256=signup_store.token_hash(token)),
        )
        assert done.change_id == second
        await handle.result()
        assert member_store.email_of(sqlite_engine, member_id) == new
        await eventually(lambda: len(mail_sink.received) >= 4, what="changed + notice")
        to = sorted(m.envelope_to[0] for m in mail_sink.received[2:])
        assert to == sorted([new, old])


async def test_cancelling_kills_a_pending_link_and_refuses_what_follows(
    ts_clock: WorkflowEnvironment, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    member_id, signup_id, email = add_member(sqlite_engine)
    async with signup_worker(ts_clock.client, sqlite_engine, mail_sink) as settings:
        handle = await start(ts_clock.client, settings, member_id, signup_id)
        new = "never-used@example.com"
        change_id = member_store.record_email_change(
            sqlite_engine, member_id, new, datetime.now(UTC)
        )
        await handle.execute_update(
            MemberWorkflow.request_email_change, EmailChangeRequest(change_id=change_id)
        )
        await handle.execute_update(MemberWorkflow.cancel_membership)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(MemberWorkflow.cancel_membership)
        assert getattr(err.value.cause, "type", None) == "member_cancelled"
        await handle.result()  # no timer left: the link died with the membership
        assert change(sqlite_engine, change_id).status == "cancelled"
        assert member_store.member_status(sqlite_engine, member_id) == "cancelled"
        assert member_store.member_for_login(sqlite_engine, email) is None
        # the tombstone: the address is refused a new signup
        assert signup_store.open_signup(sqlite_engine, email).already_member
