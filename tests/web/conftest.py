"""The web front end in a real browser (Debian's chromium through Playwright) against the
real stack: the app served by uvicorn in-process on a port of 18800–18899, a dev server, a
worker, an SMTP sink and SQLite.

Screens are written to docs/screens/ only when ``ECOKATSU_SCREENSHOTS=1`` (``make
screens``), so an ordinary test run leaves the work tree as it was.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from config import Settings
from devtools.mailsink import MailSink
from domain.signup import SignupPolicy
from store.engine import make_engine
from tests.api.conftest import settings_for
from worker import build_worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PORTS = range(18800, 18900)
SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
PHONE: ViewportSize = {"width": 360, "height": 740}


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18800-18899")


@dataclass
class WebStack:
    base: str
    settings: Settings
    engine: Engine
    sink: MailSink
    env: WorkflowEnvironment
    browser: Browser

    async def phone(self, *, javascript: bool = True) -> Page:
        """A fresh browser context at phone width (its own cookies)."""
        context = await self.browser.new_context(
            viewport=PHONE, locale="ja-JP", java_script_enabled=javascript, base_url=self.base
        )
        return await context.new_page()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def _serve(
    env: WorkflowEnvironment, sqlite_url: str, sink: MailSink, browser: Browser, **overrides: Any
) -> AsyncIterator[WebStack]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(
        sqlite_url,
        sink,
        points_registration_url=f"{base}/points/registration",
        points_signup_url=f"{base}/points/signup",
        monitoring_site_url=f"{base}/site/login",
        holder_confirmation_url=f"{base}/site/points-confirmation",
        task_queue=f"web-{uuid.uuid4().hex}",
        **overrides,
    )
    engine = make_engine(settings.database_url)
    app = create_app(settings, client=env.client, engine=engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(env.client, settings, engine, executor):
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            try:
                yield WebStack(base, settings, engine, sink, env, browser)
            finally:
                server.should_exit = True
                await task
    engine.dispose()


@pytest.fixture
async def web(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink, browser: Browser
) -> AsyncIterator[WebStack]:
    async for stack in _serve(dev_env, sqlite_url, mail_sink, browser):
        yield stack


@pytest.fixture
async def web_short_links(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink, browser: Browser
) -> AsyncIterator[WebStack]:
    """Links that expire after 3 s and may be re-sent at once (the link-state pages)."""
    policy = SignupPolicy(link_ttl=timedelta(seconds=3), resend_cooldown=timedelta(seconds=0))
    async for stack in _serve(dev_env, sqlite_url, mail_sink, browser, signup=policy):
        yield stack


@pytest.fixture
def shot() -> Callable[[Page, str], Any]:
    """``await shot(page, "01-login")``: a full-page PNG when screenshots are asked for."""
    wanted = os.environ.get("ECOKATSU_SCREENSHOTS") == "1"

    async def take(page: Page, name: str) -> None:
        if wanted:
            SCREENS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)

    return take
