"""What the API answers when a part it depends on is down, and why a retry is safe.

Real parts throughout: a dev server, a worker that the test stops and starts again, the
SMTP sink and SQLite. No part is mocked: "down" is a stopped worker, an address where no
Temporal server listens (a port of this suite's own range), or a store the API cannot
open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from config import Settings
from devtools.mailsink import MailSink
from domain.enrollment import EnrollmentStatus, PublishStatusInput, Stage
from store import journey_status
from store import starts as starts_store
from store.engine import make_engine
from store.tables import CircleApplication, Consent
from tests.api.conftest import settings_for
from tests.factories import PASSWORD, Customer, add_customer
from tests.waiting import eventually
from worker import build_worker

NO_TEMPORAL = "127.0.0.1:18101"  # nothing listens here (the suite's own port range)


def code_of(response: httpx.Response) -> tuple[int, str]:
    [item] = response.json()["detail"]
    assert set(item) == {"loc", "code", "message"} and item["message"]
    return response.status_code, item["code"]


@asynccontextmanager
async def api(
    settings: Settings, engine: Engine, **kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine, **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http


async def login(http: httpx.AsyncClient, customer: Customer) -> dict[str, str]:
    response = await http.post(
        "/v1/session", json={"user_id": customer.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_the_api_starts_and_answers_503_without_the_temporal_server(
    sqlite_engine: Engine, sqlite_url: str, mail_sink: MailSink
) -> None:
    settings = settings_for(
        sqlite_url,
        mail_sink,
        temporal_address=NO_TEMPORAL,
        temporal_connect_timeout=timedelta(seconds=1),
    )
    customer = add_customer(sqlite_engine)
    async with api(settings, sqlite_engine) as http:  # no client injected: it connects
        assert (await http.get("/healthz")).status_code == 200
        auth = await login(http, customer)  # the store alone still serves
        down = await http.post("/v1/journey", headers=auth)
        assert code_of(down) == (503, "service_unavailable"), down.text
        assert down.headers["Retry-After"].isdigit()
        # A link request is recorded and answered as always (the same answer in the same
        # time for any address); it is handed to its signup once Temporal is back.
        requested = await http.post("/v1/points/signups", json={"email": "someone@example.com"})
        assert requested.status_code == 202, requested.text


async def test_the_status_in_the_store_answers_while_temporal_never_answered(
    sqlite_engine: Engine, sqlite_url: str, mail_sink: MailSink
) -> None:
    """GET /v1/journey reads the store's row; Temporal is asked only for a journey without
    one (a run from before ``status-in-store``), and that one is 503 while it is away."""
    settings = settings_for(
        sqlite_url,
        mail_sink,
        temporal_address=NO_TEMPORAL,
        temporal_connect_timeout=timedelta(seconds=1),
    )
    published, unpublished = add_customer(sqlite_engine), add_customer(sqlite_engine)
    at = datetime.now(UTC)
    for customer in (published, unpublished):
        starts_store.mark_started(
            sqlite_engine, customer.account_id, f"enrollment-{customer.account_id}", now=at
        )
    journey_status.publish(
        sqlite_engine,
        PublishStatusInput(
            account_id=published.account_id,
            run_id="run-1",
            seq=1,
            published_at=at,
            status=EnrollmentStatus(stage=Stage.AWAITING_CONSENT, stage_entered_at=at),
        ),
    )
    async with api(settings, sqlite_engine) as http:  # it has never reached Temporal
        auth = await login(http, published)
        status = await http.get("/v1/journey", headers=auth)
        assert status.status_code == 200, status.text
        assert status.json()["stage"] == "awaiting_consent"
        gateways = await http.get("/v1/journey/gateways", headers=auth)
        assert gateways.status_code == 200, gateways.text
        asked = await http.get("/v1/journey", headers=await login(http, unpublished))
        assert code_of(asked) == (503, "service_unavailable"), asked.text
        # 申込確定 and 解約 check their caller in the store before they ask Temporal: a
        # journey never started is 404 while Temporal is away, not 503.
        never = add_customer(sqlite_engine)
        never_auth = await login(http, never)
        gateway = never.eligible_gateway
        for refused in (
            await http.post(
                "/v1/journey/applications", headers=never_auth, json={"gateway_id": gateway}
            ),
            await http.delete(f"/v1/journey/applications/{gateway}", headers=never_auth),
        ):
            assert code_of(refused) == (404, "journey_not_found"), refused.text
        applied = await http.post(
            "/v1/journey/applications",
            headers=auth,
            json={"gateway_id": published.eligible_gateway},
        )
        assert code_of(applied) == (503, "service_unavailable"), applied.text


async def test_a_store_that_cannot_be_opened_is_503(
    tmp_path: Path, dev_env: WorkflowEnvironment, mail_sink: MailSink
) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'store.sqlite3'}"
    engine = make_engine(url)
    async with api(settings_for(url, mail_sink), engine, client=dev_env.client) as http:
        down = await http.post("/v1/session", json={"user_id": "a@example.com", "password": "x"})
        assert code_of(down) == (503, "service_unavailable")
    engine.dispose()


@asynccontextmanager
async def running(worker_of: Any) -> AsyncIterator[None]:
    worker: Worker = worker_of()
    async with worker:
        yield


async def retried_call(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """As a client does: the same request again while it answers 503 (a worker that has
    just started may need more than the answer timeout for its first workflow task)."""
    for _ in range(10):
        answer = await send()
        if answer.status_code != 503:
            return answer
        await asyncio.sleep(0.5)
    return answer


async def test_a_retry_after_503_attaches_to_the_first_attempt(
    dev_env: WorkflowEnvironment, sqlite_url: str, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """Worker stopped → 503; worker back → the same request again → the first attempt's
    result, and exactly one action (one consent row, one application, one mail each)."""
    settings = settings_for(sqlite_url, mail_sink, workflow_answer_timeout=timedelta(seconds=2))
    customer = add_customer(sqlite_engine)
    with ThreadPoolExecutor(max_workers=8) as executor:

        def worker_of() -> Worker:
            return build_worker(dev_env.client, settings, sqlite_engine, executor)

        async with api(settings, sqlite_engine, client=dev_env.client) as http:
            auth = await login(http, customer)
            async with running(worker_of):
                started = await http.post("/v1/journey", headers=auth)
                assert started.json()["stage"] == "awaiting_consent"
                await mail_sink.wait_for(1)  # the invitation
            workflow_id = started.json()["workflow_id"]
            consent = {"agree": True, "terms_version": settings.circle_terms_version}

            # 1. consent, no header: the key is derived from the account and the body.
            stalled = await http.post("/v1/journey/consent", headers=auth, json=consent)
            assert code_of(stalled) == (503, "worker_unavailable")
            async with running(worker_of):
                retried = await retried_call(
                    lambda: http.post("/v1/journey/consent", headers=auth, json=consent)
                )
                assert retried.status_code == 200, retried.text
                assert retried.json()["stage"] == "awaiting_application"

            # 2. apply, no header: one application and one completion mail.
            apply = {"gateway_id": customer.eligible_gateway}
            stalled = await http.post("/v1/journey/applications", headers=auth, json=apply)
            assert code_of(stalled) == (503, "worker_unavailable")
            async with running(worker_of):
                first = await retried_call(
                    lambda: http.post("/v1/journey/applications", headers=auth, json=apply)
                )
                assert first.status_code == 201, first.text
                again = await http.post("/v1/journey/applications", headers=auth, json=apply)
                assert (again.status_code, again.json()) == (201, first.json())
                # The completion mail goes out in the background: let it arrive before this
                # worker stops (a worker stopped mid-send retries the mail: at-least-once,
                # with the same Message-ID).
                await eventually(
                    lambda: any("お申込み完了" in m.subject for m in mail_sink.received),
                    what="the completion mail",
                )

            # 3. cancel with the client's own Idempotency-Key.
            key = {**auth, "Idempotency-Key": "cancel-7f3c2a"}
            path = f"/v1/journey/applications/{customer.eligible_gateway}"
            stalled = await http.delete(path, headers=key)
            assert code_of(stalled) == (503, "worker_unavailable")
            async with running(worker_of):
                cancelled = await retried_call(lambda: http.delete(path, headers=key))
                assert cancelled.status_code == 200, cancelled.text
                assert (await http.delete(path, headers=key)).json() == cancelled.json()
                # The journey ends (withdrawn) once its mails are out: then nothing more can
                # come, and the history and the sink are complete.
                handle = dev_env.client.get_workflow_handle(workflow_id)
                await handle.result()
                history = await handle.fetch_history()
                mails = list(mail_sink.received)

    with Session(sqlite_engine) as session:
        consents = session.exec(
            select(Consent).where(Consent.account_id == customer.account_id)
        ).all()
        applications = session.exec(
            select(CircleApplication).where(CircleApplication.account_id == customer.account_id)
        ).all()
    assert [c.decision for c in consents] == ["agreed"]
    assert [a.status for a in applications] == ["cancelled"]
    # Each request ran once in the workflow: one accepted update per action (beside the
    # start's settle_start, which any start or resume sends).
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        != "settle_start"
    ]
    assert len(accepted) == len(set(accepted)) == 3
    subjects = [m.subject for m in mails]
    assert sum("お申込み完了" in s for s in subjects) == 1
    assert sum("解約" in s for s in subjects) == 1


async def test_the_status_is_answered_from_the_store_while_no_worker_runs(
    dev_env: WorkflowEnvironment, sqlite_url: str, sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """GET /v1/journey reads the row the journey published (status-in-store): with the
    worker stopped it still answers, with what the last update answered; the routes that
    must reach the workflow answer 503."""
    settings = settings_for(sqlite_url, mail_sink, workflow_answer_timeout=timedelta(seconds=2))
    customer = add_customer(sqlite_engine)
    with ThreadPoolExecutor(max_workers=8) as executor:

        def worker_of() -> Worker:
            return build_worker(dev_env.client, settings, sqlite_engine, executor)

        async with api(settings, sqlite_engine, client=dev_env.client) as http:
            auth = await login(http, customer)
            never = await http.get("/v1/journey", headers=auth)
            assert code_of(never) == (404, "journey_not_found")
            async with running(worker_of):
                started = await http.post("/v1/journey", headers=auth)
                assert started.json()["stage"] == "awaiting_consent"
                consent = {"agree": True, "terms_version": settings.circle_terms_version}
                agreed = await http.post("/v1/journey/consent", headers=auth, json=consent)
                assert agreed.json()["stage"] == "awaiting_application"
                # Read at once after the update: the update answered once the row was
                # written, so the status never shows the stage before.
                now = await http.get("/v1/journey", headers=auth)
                assert now.json()["stage"] == "awaiting_application"
                await mail_sink.wait_for(1)  # the invitation
            status = await http.get("/v1/journey", headers=auth)
            assert status.status_code == 200, status.text
            assert status.json()["stage"] == "awaiting_application"
            assert status.json()["circle_terms_version"] == settings.circle_terms_version
            gateways = await http.get("/v1/journey/gateways", headers=auth)
            assert gateways.status_code == 200
            assert customer.eligible_gateway in {
                g["gateway_id"] for g in gateways.json()["gateways"]
            }
            apply = {"gateway_id": customer.eligible_gateway}
            stalled = await http.post("/v1/journey/applications", headers=auth, json=apply)
            assert code_of(stalled) == (503, "worker_unavailable")
