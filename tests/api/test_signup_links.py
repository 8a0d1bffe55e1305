"""Every mailed link works: the signup link under a slow, absent or racing relay, and after
an operator ends a pending signup (dev server, real worker, real SMTP through aiosmtpd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink, ReceivedMail
from store import signup as signup_store
from tests.api.conftest import Stack, _stack, settings_for

LINK_MAIL = "会員登録URLのお知らせ"


def link_of(mail: ReceivedMail) -> str:
    [link] = [link for link in mail.links if "#" in link]
    return link.split("#", 1)[1]


def link_mails(sink: MailSink, email: str) -> list[ReceivedMail]:
    return [m for m in sink.received if m.envelope_to == [email] and LINK_MAIL in m.subject]


async def wait_for_link_mails(sink: MailSink, email: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(link_mails(sink, email)) < count:
        assert time.monotonic() < deadline, f"{len(link_mails(sink, email))} of {count} mails"
        await asyncio.sleep(0.05)


async def request(stack: Stack, email: str) -> float:
    """POST /v1/points/signups; returns how long the API took to answer 202."""
    started = time.monotonic()
    response = await stack.call("POST", "/v1/points/signups", json={"email": email})
    assert response.status_code == 202, response.text
    return time.monotonic() - started


async def assert_link_works(stack: Stack, token: str) -> None:
    opened = await stack.call("POST", "/v1/points/link", json={"token": token})
    assert opened.json()["state"] == "valid", opened.json()
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    assert begun.status_code == 200, begun.text


@pytest.fixture
async def slow_smtp_stack(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    """The client gives up on the relay after 1 s (as a real one might after minutes)."""
    settings = settings_for(sqlite_url, mail_sink, smtp_timeout_seconds=1.0)
    async for s in _stack(dev_env, settings, mail_sink, True):
        yield s


async def test_a_slow_relay_gets_the_same_link_on_every_attempt(slow_smtp_stack: Stack) -> None:
    """The relay keeps the mail but answers after the client gave up, so the activity
    retries. Every copy carries the one link (and one Message-ID), and it works; the
    customer's request never waited for the relay."""
    stack, email = slow_smtp_stack, "slow.relay@example.com"
    stack.sink.handler.reply_delay = 2.0
    assert await request(stack, email) < 3.0  # the relay alone takes 2 s, and retries
    await wait_for_link_mails(stack.sink, email, 1)
    stack.sink.handler.reply_delay = 0.0  # the relay recovers before the retry (5 s later)
    await wait_for_link_mails(stack.sink, email, 2)
    mails = link_mails(stack.sink, email)
    assert len({link_of(m) for m in mails}) == 1
    assert len({str(m.message["Message-ID"]) for m in mails}) == 1
    await assert_link_works(stack, link_of(mails[0]))
    await asyncio.sleep(1)
    assert len(link_mails(stack.sink, email)) == 2  # the second attempt was accepted: no more


async def test_with_the_relay_down_the_request_answers_at_once_and_the_link_follows(
    stack: Stack,
) -> None:
    email = "relay.down@example.com"
    stack.sink.stop()
    try:
        assert await request(stack, email) < 2.0  # before: the update waited on SMTP (503)
        await asyncio.sleep(2)
    finally:
        stack.sink.start()  # the relay returns on the same port
    assert link_mails(stack.sink, email) == []
    await wait_for_link_mails(stack.sink, email, 1)
    await assert_link_works(stack, link_of(link_mails(stack.sink, email)[0]))


async def test_a_reader_as_fast_as_the_relay_never_sees_link_unknown(stack: Stack) -> None:
    """Each link is opened the moment the relay has the mail, before it even answers."""
    loop = asyncio.get_running_loop()
    states: list[str] = []

    async def open_link(mail: ReceivedMail) -> None:
        response = await stack.call("POST", "/v1/points/link", json={"token": link_of(mail)})
        states.append(response.json().get("state") or response.text)

    def on_mail(mail: ReceivedMail) -> asyncio.Future[None]:  # runs in the relay's thread
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(open_link(mail), loop))

    stack.sink.handler.on_mail = on_mail
    emails = [f"fast.reader.{i}@example.com" for i in range(8)]
    await asyncio.gather(*(request(stack, email) for email in emails))
    deadline = time.monotonic() + 30
    while len(states) < len(emails):
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.05)
    assert states == ["valid"] * len(emails)


async def test_a_pending_signup_whose_workflow_was_terminated_mails_a_new_link(
    stack: Stack,
) -> None:
    """Issue 7: an operator ends a pending signup; the address is still reserved, and a
    re-entry starts a new run whose link number continues the store's count."""
    email = "terminated@example.com"
    await request(stack, email)
    await wait_for_link_mails(stack.sink, email, 1)
    first = link_of(link_mails(stack.sink, email)[0])
    ticket = signup_store.open_signup(stack.engine, email)
    await stack.client.get_workflow_handle(ticket.workflow_id).terminate("operator")

    await request(stack, email)
    await wait_for_link_mails(stack.sink, email, 2)
    second = link_of(link_mails(stack.sink, email)[1])
    assert second != first
    assert signup_store.open_signup(stack.engine, email).workflow_id == ticket.workflow_id
    await assert_link_works(stack, second)
    # The new run knows only its own link: the old one is dead.
    old = await stack.call("POST", "/v1/points/link", json={"token": first})
    assert old.json()["state"] != "valid"
