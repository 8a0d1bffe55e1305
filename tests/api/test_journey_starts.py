"""Journeys start whatever the Temporal server does: the outbox of starts and its reconciler,
against a real dev server that the test stops and starts again, a real worker, a real SMTP
server, and the store on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowExecutionStatus

from api.main import create_app
from config import Settings
from devtools.mailsink import MailSink
from journey_starts import JourneyStartReconciler
from store import starts as starts_store
from store.engine import make_engine
from tests.api.conftest import SYSTEM_KEY, Stack, settings_for
from tests.conftest import BIN, CONVERTER, SUITE_SECRETS
from tests.factories import add_customer
from tests.pii import assert_absent, history_bytes
from tests.restartable_server import RestartableDevServer
from worker import build_worker

KEY = {"X-System-Key": SYSTEM_KEY}
PASSWORD = "Test-Password-123"


@dataclass
class Outage:
    server: RestartableDevServer
    client: Client
    http: httpx.AsyncClient
    settings: Settings
    engine: Engine
    sink: MailSink


@pytest.fixture(params=["sqlite", "postgresql"])
async def outage(
    request: pytest.FixtureRequest, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[Outage]:
    """API and worker on a dev server of the test's own, which it may stop and restart."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    server = RestartableDevServer(BIN / "temporal", tmp_path / "temporal.sqlite", CONVERTER)
    await server.start()
    try:
        client = await server.connect()
        settings = settings_for(
            url,
            mail_sink,
            temporal_call_timeout=timedelta(seconds=2),
            journey_start_interval=timedelta(milliseconds=300),
        )
        engine = make_engine(url)
        app = create_app(settings, client=client, engine=engine)
        with ThreadPoolExecutor(max_workers=8) as executor:
            async with (
                build_worker(client, settings, engine, executor),
                app.router.lifespan_context(app),
            ):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                    yield Outage(server, client, http, settings, engine, mail_sink)
        async for execution in client.list_workflows():
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            assert_absent(history_bytes(await handle.fetch_history()), *SUITE_SECRETS)
        engine.dispose()
    finally:
        await server.stop()


def announcement() -> dict[str, Any]:
    gateway_id = uuid.uuid4().hex[:12].upper()
    return {
        "email": f"outage-{uuid.uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
        "display_name": "停電 花子",
        "holder_type": "individual",
        "gateways": [
            {
                "gateway_id": gateway_id,
                "pcs_serial": gateway_id[:8],
                "model": "KPBP-A",
                "pv_unit_in_use": True,
                "battery_unit_in_use": True,
            }
        ],
    }


async def eventually(check: Any, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return result


async def test_an_announcement_outlives_a_temporal_outage(outage: Outage) -> None:
    http, engine, sink = outage.http, outage.engine, outage.sink
    body = announcement()
    await outage.server.stop()

    # The account and its start are recorded; the start is pending, and the caller is told
    # so within the configured wait, in the documented shape.
    started_at = asyncio.get_running_loop().time()
    first = await http.post("/v1/system/accounts", json=body, headers=KEY)
    assert first.status_code == 202, first.text
    assert asyncio.get_running_loop().time() - started_at < 10
    account_id = first.json()["account_id"]
    assert first.json() == {
        "account_id": account_id,
        "workflow_id": f"enrollment-{account_id}",
        "journey": "pending",
    }
    [pending] = starts_store.pending_starts(engine)
    assert pending.account_id == account_id
    assert pending.last_error in ("timeout", "rpc:UNAVAILABLE")

    # The monitoring system retries: not a conflict, the same answer.
    retried = await http.post("/v1/system/accounts", json=body, headers=KEY)
    assert (retried.status_code, retried.json()) == (202, first.json())

    # The customer can log in (the store is up) but cannot start; operators cannot list.
    login = await http.post("/v1/session", json={"user_id": body["email"], "password": PASSWORD})
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for method, path, headers in (
        ("POST", "/v1/journey", auth),
        ("GET", "/v1/system/journeys", KEY),
    ):
        asked_at = asyncio.get_running_loop().time()
        down = await http.request(method, path, headers=headers)
        assert down.status_code == 503, down.text
        # Told within the server's call timeout (twice: the call, then a describe), not
        # after the whole answer timeout a missing worker gets.
        waited = asyncio.get_running_loop().time() - asked_at
        assert waited < 2 * outage.settings.temporal_call_timeout.total_seconds() + 2
        assert down.json()["detail"] == [
            {
                "loc": [],
                "code": "temporal_unavailable",
                "message": down.json()["detail"][0]["message"],
            }
        ]
    # A second account announced during the outage.
    other = announcement()
    other_first = await http.post("/v1/system/accounts", json=other, headers=KEY)
    assert other_first.status_code == 202, other_first.text
    assert len(starts_store.pending_starts(engine)) == 2
    assert sink.received == []

    # The server returns. Before any reconciler runs, the monitoring system's retry of the
    # second announcement completes its start itself.
    await outage.server.start()
    other_retry = await http.post("/v1/system/accounts", json=other, headers=KEY)
    assert other_retry.status_code == 200, other_retry.text
    assert other_retry.json() == {**other_first.json(), "journey": "started"}
    [other_invitation] = await sink.wait_for(1, timeout=60)
    assert other_invitation.envelope_to == [other["email"]]
    assert [r.account_id for r in starts_store.pending_starts(engine)] == [account_id]

    # Two reconcilers (as two workers run them) drain the rest of the outbox.
    reconcilers = [
        asyncio.create_task(JourneyStartReconciler(outage.client, engine, outage.settings).run())
        for _ in range(2)
    ]
    try:
        invitation = (await sink.wait_for(2, timeout=60))[1]
        assert invitation.envelope_to == [body["email"]]
        assert "お申込みのご案内" in invitation.subject

        async def start_closed() -> bool:
            row = starts_store.get_start(engine, account_id)
            return row is not None and row.status == "started"

        await eventually(start_closed)
        assert starts_store.pending_starts(engine) == []

        # The retry after the start answers as a successful first announcement would.
        done = await http.post("/v1/system/accounts", json=body, headers=KEY)
        assert done.status_code == 200, done.text
        assert done.json() == {**first.json(), "journey": "started"}
        journey = await http.get("/v1/journey", headers=auth)
        assert journey.json()["stage"] == "awaiting_consent"

        # One run and one invitation per account, however many tried.
        await asyncio.sleep(2)
        assert sorted(m.envelope_to[0] for m in sink.received) == sorted(
            [body["email"], other["email"]]
        )
        for announced in (first, other_first):
            query = f"WorkflowId = '{announced.json()['workflow_id']}'"

            async def runs(query: str = query) -> list[object]:
                return [w async for w in outage.client.list_workflows(query)]

            assert len(await eventually(runs)) == 1
    finally:
        for task in reconcilers:
            task.cancel()
        await asyncio.gather(*reconcilers, return_exceptions=True)


async def test_a_withdrawn_journey_is_never_returned_as_the_current_one(stack: Stack) -> None:
    """Withdrawing ends the journey at once, but its run stays open while it sends the
    cancellation mail (here: deferred once by the relay, so for 5 s or more). Starting
    again meanwhile must start a new journey, not return the withdrawn run."""
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    first = await stack.call("POST", "/v1/journey", headers=auth)
    version = (await stack.call("GET", "/v1/terms")).json()["version"]
    consent = {"agree": True, "terms_version": version}
    await stack.call("POST", "/v1/journey/consent", headers=auth, json=consent)
    applied = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert applied.status_code == 201, applied.text
    await stack.sink.wait_for(2)  # invitation, application complete
    workflow_id = first.json()["workflow_id"]
    old_run = (await stack.client.get_workflow_handle(workflow_id).describe()).run_id

    stack.sink.handler.scripted_replies.append("451 4.3.0 try again later")
    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert cancelled.json()["stage"] == "withdrawn"
    assert (await stack.client.get_workflow_handle(workflow_id).describe()).status == (
        WorkflowExecutionStatus.RUNNING
    )

    again = await stack.call("POST", "/v1/journey", headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["stage"] == "awaiting_consent"
    described = await stack.client.get_workflow_handle(workflow_id).describe()
    assert described.run_id != old_run
    old = await stack.client.get_workflow_handle(workflow_id, run_id=old_run).describe()
    assert old.status == WorkflowExecutionStatus.COMPLETED
    mails = await stack.sink.wait_for(3)
    assert "解約" in mails[2].subject  # the withdrawn run finished its work


async def test_a_journey_that_ends_at_once_is_returned_not_restarted(stack: Stack) -> None:
    """A new run that is over at once (ineligible) is the answer: no loop of new runs."""
    customer = add_customer(stack.engine, holder_type="corporate")
    auth = await stack.login(customer)
    started = await stack.call("POST", "/v1/journey", headers=auth)
    assert started.status_code == 200, started.text
    assert (started.json()["stage"], started.json()["ineligible_reason"]) == (
        "ineligible",
        "corporate_account",
    )
    query = f"WorkflowId = '{started.json()['workflow_id']}'"

    async def runs() -> list[object]:
        return [w async for w in stack.client.list_workflows(query)]

    await asyncio.sleep(1)
    assert len(await eventually(runs)) == 1
