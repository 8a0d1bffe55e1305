"""The API's thread-pool hops per request: one for each piece of blocking work (the store),
none for what only reads the app's state (settings, engine, token signer, a header).

Every hop costs the event loop a hand-off to a thread and back (about 0.2 ms of CPU here,
README, Benchmarks): FastAPI runs every plain ``def`` dependency in its thread pool, so the
dependencies that do no blocking work are ``async def``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import pytest

from tests.api.conftest import Stack
from tests.factories import add_customer


@contextmanager
def counted_hops() -> Iterator[list[str]]:
    """The names of the API's functions (``api``, ``store``) sent to a thread meanwhile,
    by FastAPI (anyio) or ``asyncio.to_thread`` (the default executor). The worker in the
    same process is not counted: its activities run on an executor of their own, and
    what its libraries send (aiosmtplib's host name look-up) is not the API's."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync
    loop = asyncio.get_running_loop()
    run_in_executor = loop.run_in_executor

    def note(func: Callable[..., Any]) -> None:
        inner = getattr(func, "func", func)  # functools.partial
        if getattr(inner, "__qualname__", "") == "Context.run":  # asyncio.to_thread's
            inner = func.args[0]  # type: ignore[attr-defined]
        if str(getattr(inner, "__module__", "")).startswith(("api.", "store.")):
            hops.append(str(inner.__qualname__))

    async def counting_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        note(func)
        return await run_sync(func, *args, **kwargs)

    def counting_run_in_executor(executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        if executor is None:
            note(func)
        return run_in_executor(executor, func, *args)

    anyio.to_thread.run_sync = counting_run_sync  # type: ignore[assignment]
    loop.run_in_executor = counting_run_in_executor  # type: ignore[method-assign,assignment]
    try:
        yield hops
    finally:
        anyio.to_thread.run_sync = run_sync
        loop.run_in_executor = run_in_executor  # type: ignore[method-assign]


@pytest.mark.timeout(120)
async def test_a_step_hops_to_a_thread_only_for_the_store(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    await stack.start_journey(auth)

    with counted_hops() as hops:
        status = await stack.call("GET", "/v1/journey", headers=auth)
    assert status.status_code == 200, status.text
    # one statement: the token's account still exists, and its journey's status row
    assert hops == ["read_for_caller"], hops

    with counted_hops() as hops:
        consent = await stack.call(
            "POST",
            "/v1/journey/consent",
            headers={**auth, "Idempotency-Key": "hops-1"},
            json={"agree": True, "terms_version": stack.settings.circle_terms_version},
        )
    assert consent.status_code == 200, consent.text
    assert hops == ["enrolled_account"], hops

    gateway = customer.eligible_gateway
    with counted_hops() as hops:
        applied = await stack.call(
            "POST", "/v1/journey/applications", headers=auth, json={"gateway_id": gateway}
        )
    assert applied.status_code == 201, applied.text
    # one statement: the token's account still exists, its journey was started, and
    # (without an Idempotency-Key) its applications for the gateway, for the request's key
    assert hops == ["application_caller"], hops
