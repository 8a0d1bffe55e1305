"""The API against a real dev server, a real worker, a real SMTP server and SQLite."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.main import create_app
from config import Settings
from devtools.mailsink import MailSink
from store.engine import make_engine
from tests.conftest import TEST_KEYS
from tests.factories import PASSWORD, Customer
from worker import build_worker

SYSTEM_KEY = "test-system-key"


@dataclass
class Stack:
    http: httpx.AsyncClient
    settings: Settings
    engine: Engine
    sink: MailSink
    client: Client

    async def login(self, customer: Customer) -> dict[str, str]:
        response = await self.http.post(
            "/v1/session", json={"user_id": customer.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, **kwargs)

    async def start_journey(self, auth: dict[str, str]) -> dict[str, Any]:
        """``POST /v1/journey``, answered 200: its body."""
        started = await self.call("POST", "/v1/journey", headers=auth)
        assert started.status_code == 200, started.text
        body: dict[str, Any] = started.json()
        return body


def settings_for(sqlite_url: str, sink: MailSink, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": sqlite_url,
        "smtp_port": sink.port,
        "task_queue": f"api-{uuid.uuid4().hex}",
        "system_api_key": SYSTEM_KEY,
        "secret_key": "test-secret",
        "signup_link_key": "test-signup-link-key",
        "workflow_answer_timeout": timedelta(seconds=10),
        # the keys the test clients encrypt with, so the codec server can open them
        "codec_keys": {k: base64.b64encode(v).decode() for k, v in TEST_KEYS.items()},
        "codec_key_id": "test-1",
    }
    return Settings(**{**values, **overrides})


@asynccontextmanager
async def api_beside_stand_in(
    client: Client, settings: Settings, engine: Engine, stand_in: type
) -> AsyncIterator[httpx.AsyncClient]:
    """The API (in process) and a worker that runs only ``stand_in``: a workflow class
    under a product type name, standing for an older worker (a rolling deployment) or
    one that answers only what a route may ask."""
    app = create_app(settings, client=client, engine=engine)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[stand_in],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
        worker,
    ):
        yield http


async def _stack(
    env: WorkflowEnvironment, settings: Settings, sink: MailSink, with_worker: bool
) -> AsyncIterator[Stack]:
    engine = make_engine(settings.database_url)
    app = create_app(settings, client=env.client, engine=engine)
    with ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(env.client, settings, engine, executor)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                stack = Stack(http, settings, engine, sink, env.client)
                if with_worker:
                    async with worker:
                        yield stack
                else:
                    yield stack
    engine.dispose()


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    async for s in _stack(dev_env, settings_for(sqlite_url, mail_sink), mail_sink, True):
        yield s


@pytest.fixture
async def stack_on_postgresql(
    dev_env: WorkflowEnvironment, pg_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    """The API and worker with the store on PostgreSQL, as docker-compose runs them."""
    async for s in _stack(dev_env, settings_for(pg_url, mail_sink), mail_sink, True):
        yield s


@pytest.fixture
async def stack_without_worker(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    settings = settings_for(sqlite_url, mail_sink, workflow_answer_timeout=timedelta(seconds=2))
    async for s in _stack(dev_env, settings, mail_sink, False):
        yield s


@pytest.fixture
async def stack_with_tight_limits(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    settings = settings_for(sqlite_url, mail_sink, signup_requests_per_hour=3)
    async for s in _stack(dev_env, settings, mail_sink, True):
        yield s
