"""Login is throttled per user ID and per client, in the store: every API instance sees it."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from devtools.mailsink import MailSink
from store.engine import make_engine
from tests.api.conftest import settings_for
from tests.factories import PASSWORD, add_customer

WRONG = "Wrong-Password-999"


@pytest.fixture(params=["sqlite", "postgresql"])
async def two_instances(
    request: pytest.FixtureRequest, dev_env: WorkflowEnvironment, mail_sink: MailSink
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Any]]:
    """Two API processes' apps, each with its own engine, over one store."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    # 13 per client: above the 12 failures one test makes from it on two user IDs.
    settings = settings_for(
        url, mail_sink, login_failures_per_account=5, login_failures_per_client=13
    )
    engines = [make_engine(url), make_engine(url)]
    async with AsyncExitStack() as stack:
        clients = []
        for engine in engines:
            app = create_app(settings, client=dev_env.client, engine=engine)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://api")
                )
            )
        yield clients[0], clients[1], engines[0]
    for engine in engines:
        engine.dispose()


async def log_in(http: httpx.AsyncClient, user_id: str, password: str) -> httpx.Response:
    return await http.post("/v1/session", json={"user_id": user_id, "password": password})


async def test_an_account_locks_across_instances_even_for_the_right_password(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient, Any],
) -> None:
    a, b, engine = two_instances
    customer = add_customer(engine)
    for i in range(5):  # the failures alternate between the two instances
        failed = await log_in(a if i % 2 else b, customer.email, WRONG)
        assert failed.status_code == 401
    locked = await log_in(a, customer.email, PASSWORD)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert locked.json() == {
        "detail": [
            {"loc": [], "code": "login_throttled", "message": locked.json()["detail"][0]["message"]}
        ]
    }
    assert "access_token" not in locked.text
    assert (await log_in(b, customer.email, PASSWORD)).status_code == 429
    # Typed differently (case, spaces), it is the same user ID.
    assert (await log_in(b, f" {customer.email.upper()} ", PASSWORD)).status_code == 429


async def test_an_unknown_user_id_gets_the_same_answers(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient, Any],
) -> None:
    a, b, engine = two_instances
    customer = add_customer(engine)
    stranger = "nobody-at-all@example.com"
    answers: dict[str, list[tuple[int, str, bool]]] = {customer.email: [], stranger: []}
    for user_id in answers:
        for i in range(6):
            got = await log_in(a if i % 2 else b, user_id, WRONG)
            answers[user_id].append((got.status_code, got.text, "Retry-After" in got.headers))
    assert answers[customer.email] == answers[stranger]
    assert [status for status, _, _ in answers[stranger]] == [401] * 5 + [429]


async def test_a_client_that_fails_on_many_user_ids_is_locked(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient, Any],
) -> None:
    a, b, engine = two_instances
    customer = add_customer(engine)
    statuses = [
        (await log_in(a if i % 2 else b, f"guess-{i}@example.com", WRONG)).status_code
        for i in range(13)
    ]
    assert statuses == [401] * 13
    assert (await log_in(a, customer.email, PASSWORD)).status_code == 429  # same client


async def test_a_success_forgives_the_accounts_earlier_failures(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient, Any],
) -> None:
    a, _, engine = two_instances
    customer = add_customer(engine)
    for _ in range(4):
        assert (await log_in(a, customer.email, WRONG)).status_code == 401
    assert (await log_in(a, customer.email, PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await log_in(a, customer.email, WRONG)).status_code == 401
    assert (await log_in(a, customer.email, PASSWORD)).status_code == 200


async def test_unknown_and_known_user_ids_cost_the_same_hash(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient, Any],
) -> None:
    """Both paths hash (a dummy for an unknown user ID): no existence oracle by time."""
    a, _, engine = two_instances
    customers = [add_customer(engine) for _ in range(4)]
    timings: dict[bool, list[float]] = {True: [], False: []}
    for i in range(8):  # within the per-account limit: 2 failures per user ID
        known = i % 2 == 0
        user_id = customers[i // 2].email if known else f"unknown-{i}@example.com"
        started = time.perf_counter()
        assert (await log_in(a, user_id, WRONG)).status_code == 401
        timings[known].append(time.perf_counter() - started)
    known_median, unknown_median = (statistics.median(timings[k]) for k in (True, False))
    assert abs(known_median - unknown_median) < 0.5 * max(known_median, unknown_median)
