"""Running SignupWorkflow (and EnrollmentWorkflow) with real activities and SMTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle

from config import Settings
from devtools.mailsink import MailSink
from domain.customer import CustomerInfo
from domain.enrollment import RecordApplicationInput
from domain.jst import QuietHours
from domain.mail import MailKind
from domain.signup import SignupInput, SignupPolicy, SignupView
from store import enrollment as enrollment_store
from store import signup as signup_store
from store.tables import OutboxMail
from tests.factories import Customer, add_customer
from worker import build_worker
from workflows.signup import SignupWorkflow

SETTINGS = Settings()
# No quiet hours: the delays alone decide.
NO_QUIET = QuietHours(start=time(0, 0), end=time(0, 0))
INFO = CustomerInfo.model_validate(
    {
        "name": "笑顔 太郎",
        "furigana": "エガオ タロウ",
        "address": {
            "postal_code": "530-0001",
            "prefecture": "大阪府",
            "address": "大阪市北区梅田1-2-3",
        },
        "phone": ["06", "1234", "5678"],
    }
)


@asynccontextmanager
async def signup_worker(client: Client, engine: Engine, sink: MailSink) -> AsyncIterator[Settings]:
    settings = Settings(task_queue=f"signup-{uuid.uuid4().hex}", smtp_port=sink.port)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(client, settings, engine, executor):
            yield settings


def applied_customer(engine: Engine) -> Customer:
    """A customer whose circle application for the eligible gateway is confirmed."""
    customer = add_customer(engine)
    enrollment_store.record_application(
        engine,
        RecordApplicationInput(
            key=uuid.uuid4().hex,
            account_id=customer.account_id,
            gateway_id=customer.eligible_gateway,
            applied_at=datetime.now(UTC),
        ),
    )
    return customer


async def start_signup(
    client: Client,
    settings: Settings,
    engine: Engine,
    email: str,
    policy: SignupPolicy | None = None,
    quiet: QuietHours = NO_QUIET,
    wait_for_mail: bool = True,
) -> WorkflowHandle[SignupWorkflow, SignupView]:
    """What the API does, without update-with-start (the time-skipping server lacks it)."""
    ticket = signup_store.open_signup(engine, email)
    handle = await client.start_workflow(
        SignupWorkflow.run,
        SignupInput(
            signup_id=ticket.signup_id,
            already_member=ticket.already_member,
            service_terms=SETTINGS.points_terms(),
            privacy_policy=SETTINGS.points_privacy(),
            policy=policy or SignupPolicy(),
            quiet_hours=quiet,
        ),
        id=ticket.workflow_id,
        task_queue=settings.task_queue,
    )
    before = links_sent(engine, ticket.signup_id)
    await handle.execute_update(SignupWorkflow.request_link)
    if wait_for_mail and not ticket.already_member:
        await link_mailed(engine, ticket.signup_id, before + 1)
        await activities_done(handle)
    return handle


async def activities_done(handle: WorkflowHandle[SignupWorkflow, SignupView]) -> None:
    """Wait until the mail activity's completion, and the workflow task that follows it,
    are in history too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        if loop.time() > deadline:
            raise AssertionError("activities still pending")
        await asyncio.sleep(0.05)


def links_sent(engine: Engine, signup_id: str) -> int:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMail).where(
                OutboxMail.signup_id == signup_id,
                OutboxMail.kind == MailKind.SIGNUP_LINK.value,
                OutboxMail.status == "sent",
            )
        ).all()
    return len(rows)


async def link_mailed(engine: Engine, signup_id: str, count: int, timeout: float = 20) -> None:
    """Wait (real time) until ``count`` link mails of the signup are sent: the update
    answers once the link is recorded, and the mail follows in the background."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while links_sent(engine, signup_id) < count:
        if loop.time() > deadline:
            raise AssertionError(f"link mail {count} not sent in time")
        await asyncio.sleep(0.05)


def token_in(sink: MailSink, email: str) -> str:
    """The token of the newest link mailed to ``email`` (after the # of the URL)."""
    for mail in reversed(sink.received):
        if mail.envelope_to == [email] and "会員登録URLのお知らせ" in mail.subject:
            return next(link for link in mail.links if "#" in link).split("#", 1)[1]
    raise AssertionError("no link mail")


def hashed(token: str) -> str:
    return signup_store.token_hash(token)


QUICK = SignupPolicy(
    link_ttl=timedelta(hours=24),
    resend_cooldown=timedelta(minutes=1),
    resend_daily_cap=3,
    idle_reminder_after=timedelta(days=2),
    abandon_after=timedelta(days=7),
)
