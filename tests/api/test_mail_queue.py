"""``ECOKATSU_MAIL_TASK_QUEUE``: the workflows schedule their mails on a task queue of
their own, which only the mail worker (``worker.py --only mail``) serves. Real dev server,
worker, SMTP sink and SQLite, through the API."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from devtools.mailsink import MailSink
from domain.ids import enrollment_workflow_id
from store.engine import make_engine
from tests.api import test_holder_api
from tests.api.conftest import Stack, settings_for
from tests.api.test_enrollment_api import walk_through
from tests.factories import add_customer
from tests.waiting import eventually, mails
from worker import Activities, build_mail_worker, build_worker

ROOT = Path(__file__).resolve().parents[2]


MAILING = {"send_mail", "send_link", "mail_holder_confirmation", "mail_registration_notice"}


async def mail_queues(
    handle: WorkflowHandle[Any, Any], types: set[str] | None = None
) -> list[tuple[str, str]]:
    """(activity type, task queue) of every mail activity the run scheduled, in order."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name in (types or {"send_mail"}):
            found.append((attrs.activity_type.name, attrs.task_queue.name))
    return found


@asynccontextmanager
async def mail_queue_stack(
    env: WorkflowEnvironment, sqlite_url: str, sink: MailSink
) -> AsyncIterator[tuple[Stack, Worker]]:
    """The API and the workflows' worker running; the mail worker built, not started."""
    settings = settings_for(sqlite_url, sink, mail_task_queue=f"mail-{uuid.uuid4().hex}")
    engine = make_engine(settings.database_url)
    app = create_app(settings, client=env.client, engine=engine)
    with ThreadPoolExecutor(max_workers=8) as executor:
        activities = Activities.of(settings, engine)
        async with AsyncExitStack() as running:
            await running.enter_async_context(
                build_worker(env.client, settings, engine, executor, activities)
            )
            await running.enter_async_context(app.router.lifespan_context(app))
            http = await running.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
            )
            mail_worker = build_mail_worker(env.client, settings, engine, executor, activities)
            yield Stack(http, settings, engine, sink, env.client), mail_worker
    engine.dispose()


async def test_mails_wait_on_their_queue_until_the_mail_worker_serves_it(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    async with mail_queue_stack(dev_env, sqlite_url, mail_sink) as (stack, mail_worker):
        customer = add_customer(stack.engine)
        auth = await stack.login(customer)
        started = await stack.call("POST", "/v1/journey", headers=auth)
        assert started.json()["stage"] == "awaiting_consent"
        handle = dev_env.client.get_workflow_handle(enrollment_workflow_id(customer.account_id))

        # The invitation is scheduled on the mail queue, and nobody else takes it.
        queue = stack.settings.mail_task_queue
        scheduled = await eventually(lambda: mail_queues(handle), what="the invitation")
        assert scheduled == [("send_mail", queue)]
        described = await handle.describe()
        assert [a.activity_type.name for a in described.raw_description.pending_activities] == [
            "send_mail"
        ]
        assert mail_sink.received == []

        async with mail_worker:
            [invitation] = await mails(mail_sink, 1)
        assert invitation.envelope_to == [customer.email]


async def test_a_whole_journey_with_the_mail_worker(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    async with mail_queue_stack(dev_env, sqlite_url, mail_sink) as (stack, mail_worker):
        async with mail_worker:
            await walk_through(stack)


async def test_the_signup_and_holder_mails_with_the_mail_worker(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    """STEP links, the holder's confirmation, the member's notices: every mailing
    activity of every workflow of the stack was scheduled on the mail queue."""
    async with mail_queue_stack(dev_env, sqlite_url, mail_sink) as (stack, mail_worker):
        async with mail_worker:
            await test_holder_api.test_the_holder_confirms_in_the_circle_session(stack)
        found: set[tuple[str, str]] = set()
        listed = dev_env.client.list_workflows(f"TaskQueue = '{stack.settings.task_queue}'")
        async for execution in listed:
            handle = dev_env.client.get_workflow_handle(execution.id, run_id=execution.run_id)
            found |= set(await mail_queues(handle, MAILING))
    queues = {queue for _, queue in found}
    assert queues == {stack.settings.mail_task_queue}
    assert {"send_mail", "send_link", "mail_holder_confirmation"} <= {t for t, _ in found}


def test_the_mail_worker_needs_its_queue(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOKATSU_")}
    env |= {
        "ECOKATSU_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "ECOKATSU_TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "worker.py", "--only", "mail"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ECOKATSU_MAIL_TASK_QUEUE" in done.stderr
