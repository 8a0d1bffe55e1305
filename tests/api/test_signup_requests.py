"""POST /v1/points/signups: the same answer in the same time for members and strangers,
the work done durably after answering, and a capped "already registered" mail."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from api.deps import TemporalConnection
from api.main import create_app
from api.services.signup_requests import SignupRequests
from devtools.mailsink import MailSink
from store import signup as signup_store
from store import signup_requests as queue
from store.engine import make_engine
from store.tables import Account, PointSignup
from tests.api.conftest import Stack, _stack, settings_for
from tests.store.test_signup_store import applied, member_input
from worker import build_worker

ALREADY_MEMBER_SUBJECT = "会員登録についてのお知らせ"
LINK_SUBJECT = "会員登録URLのお知らせ"


def make_member(engine: Engine, email: str) -> None:
    # A member needs an active circle application, and (registered under the account's own
    # address) no confirmation by the account holder.
    customer = applied(engine)
    with Session(engine) as session:
        account = session.get(Account, customer.account_id)
        assert account is not None
        account.email = email
        session.add(account)
        session.commit()
    ticket = signup_store.open_signup(engine, email)
    signup_store.register_member(engine, member_input(ticket.signup_id, customer))


async def queue_empty(engine: Engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(queue.oldest, engine) is not None:
        assert time.monotonic() < deadline, "signup requests were not handed over"
        await asyncio.sleep(0.02)


def refused_signups(engine: Engine, email: str) -> int:
    with Session(engine) as session:
        rows = session.exec(
            select(PointSignup).where(PointSignup.email == email, PointSignup.status == "refused")
        ).all()
        return len(rows)


@pytest.fixture
async def served(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    """The API under a real uvicorn on a free port, with a real worker: an attacker's view
    (an in-process ASGI client would wait for the background work too)."""
    settings = settings_for(sqlite_url, mail_sink, signup_requests_per_hour=1000)
    engine = make_engine(sqlite_url)
    app = create_app(settings, client=dev_env.client, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(dev_env.client, settings, engine, executor):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                yield http, engine
            server.should_exit = True
            await serving
    engine.dispose()


async def test_members_and_strangers_are_answered_in_the_same_time(
    served: tuple[httpx.AsyncClient, Engine],
) -> None:
    http, engine = served
    member = "timing-member@example.com"
    make_member(engine, member)
    rounds = 25
    order = [True] * rounds + [False] * rounds
    random.Random(6).shuffle(order)
    timings: dict[bool, list[float]] = {True: [], False: []}
    answers = set()
    await http.post("/v1/points/signups", json={"email": "warm-up@example.com"})
    await queue_empty(engine)
    for i, is_member in enumerate(order):
        email = member if is_member else f"timing-stranger-{i}@example.com"
        started = time.perf_counter()
        response = await http.post("/v1/points/signups", json={"email": email})
        timings[is_member].append(time.perf_counter() - started)
        answers.add((response.status_code, response.text))
        await queue_empty(engine)  # each request measured alone, after the last one's work
    [(status, _)] = answers  # one answer for everyone
    assert status == 202
    member_ms = statistics.median(timings[True]) * 1000
    stranger_ms = statistics.median(timings[False]) * 1000
    print(f"median: member {member_ms:.1f} ms, stranger {stranger_ms:.1f} ms")
    assert abs(member_ms - stranger_ms) < 15, (member_ms, stranger_ms)
    assert refused_signups(engine, member) == 1  # and the member was told once


@pytest.fixture
async def stack_with_notice_cap_2(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    settings = settings_for(sqlite_url, mail_sink, signup_member_notice_cap=2)
    async for s in _stack(dev_env, settings, mail_sink, True):
        yield s


async def test_a_member_is_told_once_a_day_by_default(stack: Stack) -> None:
    await told_at_most(stack, 1)


async def test_the_cap_is_configurable(stack_with_notice_cap_2: Stack) -> None:
    await told_at_most(stack_with_notice_cap_2, 2)


async def told_at_most(stack: Stack, cap: int) -> None:
    member = f"capped-{cap}@example.com"
    make_member(stack.engine, member)
    for _ in range(4):
        answer = await stack.call("POST", "/v1/points/signups", json={"email": member})
        assert answer.status_code == 202
    await queue_empty(stack.engine)
    assert refused_signups(stack.engine, member) == cap  # one workflow (one mail) each
    await stack.sink.wait_for(cap)
    told = [m for m in stack.sink.received if m.envelope_to == [member]]
    assert [m.subject for m in told] == [told[0].subject] * cap
    assert ALREADY_MEMBER_SUBJECT in told[0].subject


async def test_a_request_taken_while_the_worker_is_away_is_handed_over_later(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    settings = settings_for(sqlite_url, mail_sink, workflow_answer_timeout=timedelta(seconds=2))
    engine = make_engine(sqlite_url)
    app = create_app(settings, client=dev_env.client, engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            answer = await http.post("/v1/points/signups", json={"email": "later@example.com"})
    assert answer.status_code == 202  # answered although nothing could be done yet
    assert await asyncio.to_thread(queue.oldest, engine) is not None
    assert mail_sink.received == []
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with build_worker(dev_env.client, settings, engine, executor):
            # Another instance's drainer, once the first hand-over's lease has run out.
            later = SignupRequests(
                engine,
                TemporalConnection(settings, dev_env.client),
                settings,
                clock=lambda: time.time() + 3600,
            )
            assert await later.drain_once() == 1
            [mail] = await mail_sink.wait_for(1)
    assert LINK_SUBJECT in mail.subject and mail.envelope_to == ["later@example.com"]
    assert await asyncio.to_thread(queue.oldest, engine) is None
    engine.dispose()
