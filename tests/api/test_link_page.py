"""``POST /v1/points/link``, the page a mailed link opens: one query to the signup
(``link_view``: the link's state and, when valid, its expiry) instead of two; a worker
from before that query (a rolling deployment) is asked the two it knows. Dev server,
real store; the signup's workflow is a stand-in that answers only the queries named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from domain.errors import ErrorCode, message_for
from domain.ids import signup_workflow_id
from domain.signup import LinkStatus, LinkView, RecordLinkInput, SignupStatus, SignupView
from store import signup as signup_store
from store.engine import make_engine
from tests.api.conftest import api_beside_stand_in, settings_for

# What the stand-ins answer: not the store's expiry (an operator may have extended it).
EXTENDED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@workflow.defn(name="PointSignupWorkflow")
class SignupAnsweringLinkViewOnly:
    """The page must need nothing but ``link_view``."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def link_view(self, token_sha256: str) -> LinkView:
        return LinkView(state=LinkStatus.VALID, expires_at=EXTENDED)


@workflow.defn(name="PointSignupWorkflow")
class SignupBeforeLinkView:
    """A worker from before ``link_view``."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def link_state(self, token_sha256: str) -> LinkStatus:
        return LinkStatus.VALID

    @workflow.query
    def get_signup(self) -> SignupView:
        return SignupView(status=SignupStatus.AWAITING_OPEN, link_expires_at=EXTENDED)


@workflow.defn(name="PointSignupWorkflow")
class SignupBeforeLinkViewLinkUsed:
    """A worker from before ``link_view``, the link spent: no expiry asked for."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def link_state(self, token_sha256: str) -> LinkStatus:
        return LinkStatus.LINK_USED


VALID = {"state": "valid", "message": "", "expires_at": EXTENDED.isoformat().replace("+00:00", "Z")}
USED = {"state": "link_used", "message": message_for(ErrorCode.LINK_USED), "expires_at": None}


@pytest.mark.parametrize(
    ("stand_in", "page"),
    [
        (SignupAnsweringLinkViewOnly, VALID),
        (SignupBeforeLinkView, VALID),
        (SignupBeforeLinkViewLinkUsed, USED),
    ],
)
async def test_the_link_page_answers_state_and_expiry(
    dev_env: WorkflowEnvironment,
    sqlite_url: str,
    mail_sink: MailSink,
    stand_in: type,
    page: dict[str, str | None],
) -> None:
    settings = settings_for(sqlite_url, mail_sink)
    engine = make_engine(settings.database_url)
    ticket = signup_store.open_signup(engine, "link.page@example.com")
    key = settings.signup_link_key.get_secret_value().encode()
    issued = signup_store.record_link(
        engine,
        key,
        RecordLinkInput(
            signup_id=ticket.signup_id,
            request_key="link-page-test",
            issued_at=datetime.now(UTC),
            ttl=timedelta(hours=24),
        ),
    )
    token = signup_store.link_to_mail(engine, key, ticket.signup_id, issued.seq).token
    async with api_beside_stand_in(dev_env.client, settings, engine, stand_in) as http:
        handle = await dev_env.client.start_workflow(
            stand_in.run,  # type: ignore[attr-defined]
            id=signup_workflow_id(ticket.signup_id),
            task_queue=settings.task_queue,
        )
        opened = await http.post("/v1/points/link", json={"token": token})
        assert opened.status_code == 200, opened.text
        assert opened.json() == page
        await handle.terminate()
    engine.dispose()
