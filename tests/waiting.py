"""The suite's one way to wait for what happens elsewhere (a worker, a server, the mail sink).

Every wait names the event it waits for and returns what it saw, so the assertion that
follows is made on that event rather than on the passing of time. A wait that times out
fails with the last value seen. Proving that something did *not* happen is never done by
waiting: wait for the event that would have come with it or after it (the workflow closed,
its history records the step, the outbox row), then assert it is absent.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

from devtools.mailsink import MailSink, ReceivedMail

T = TypeVar("T")

POLL_INTERVAL = 0.05
# Generous: two CPU cores are shared by the servers, the worker and parallel suites, and a
# wait returns as soon as its event happens, so a long timeout costs nothing when all is well.
TIMEOUT = 30.0


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = ..., what: str = ...
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T | None], *, timeout: float = ..., what: str = ...
) -> T: ...
async def eventually(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    *,
    timeout: float = TIMEOUT,
    what: str = "condition",
) -> T:
    """Call ``check`` (sync or async) until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g} s; last seen: {value!r}")
        await asyncio.sleep(POLL_INTERVAL)


async def mails(sink: MailSink, count: int, timeout: float = TIMEOUT) -> list[ReceivedMail]:
    """Every mail the sink holds, once it holds at least ``count``."""
    try:
        return await eventually(
            lambda: list(sink.received) if len(sink.received) >= count else [], timeout=timeout
        )
    except AssertionError:
        subjects = [m.subject for m in sink.received]
        raise AssertionError(f"{len(subjects)} of {count} mails arrived: {subjects}") from None
