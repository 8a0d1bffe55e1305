"""``cli.py funnel``: households at each stage and conversions, from visibility counts on
the dev server (scoped to this test's task queue, so other tests' journeys do not count)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from typer.testing import CliRunner

from domain.enrollment import PointsRegistered, Stage
from funnel import Funnel, funnel, render
from tests.api.conftest import Stack
from tests.factories import add_customer
from tests.waiting import eventually
from workflows.enrollment import EnrollmentWorkflow


async def test_funnel_counts_each_stage_and_conversions(stack: Stack, monkeypatch: Any) -> None:
    queue = stack.settings.task_queue
    version = (await stack.call("GET", "/v1/terms")).json()["version"]
    consent = {"agree": True, "terms_version": version}
    waiting, consented, enrolled = (add_customer(stack.engine) for _ in range(3))
    corporate = add_customer(stack.engine, holder_type="corporate")
    for customer in (waiting, consented, enrolled, corporate):
        auth = await stack.login(customer)
        assert (await stack.call("POST", "/v1/journey", headers=auth)).status_code == 200
        if customer in (consented, enrolled):
            done = await stack.call("POST", "/v1/journey/consent", headers=auth, json=consent)
            assert done.status_code == 200, done.text
    auth = await stack.login(enrolled)
    applied = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": enrolled.eligible_gateway},
    )
    assert applied.status_code == 201, applied.text
    handle = stack.client.get_workflow_handle(f"enrollment-{enrolled.account_id}")
    await handle.signal(
        EnrollmentWorkflow.points_registered,
        PointsRegistered(gateway_id=enrolled.eligible_gateway, registered_at=datetime.now(UTC)),
    )

    expected = {stage: 0 for stage in Stage} | {
        Stage.AWAITING_CONSENT: 1,
        Stage.AWAITING_APPLICATION: 1,
        Stage.ENROLLED: 1,
        Stage.INELIGIBLE: 1,
    }

    async def settled() -> Funnel | None:
        found = await funnel(stack.client, datetime.now(UTC), queue)
        return found if found.at_stage == expected else None

    result = await eventually(settled, what=f"funnel {expected}")
    assert result.converted == {timedelta(days=7): 1, timedelta(days=30): 1}
    # a conversion older than the window is not counted in it
    later = await funnel(stack.client, datetime.now(UTC) + timedelta(days=8), queue)
    assert later.converted == {timedelta(days=7): 0, timedelta(days=30): 1}
    assert "converted (reached enrolled) in the last 7 days: 1" in render(result)

    # the CLI prints the same, through its own connection
    from cli import app
    from config import get_settings

    monkeypatch.setenv("ECOKATSU_TEMPORAL_ADDRESS", stack.client.service_client.config.target_host)
    monkeypatch.setenv(
        "ECOKATSU_CODEC_KEYS",
        json.dumps({"test-1": stack.settings.codec_keys["test-1"].get_secret_value()}),
    )
    monkeypatch.setenv("ECOKATSU_CODEC_KEY_ID", "test-1")
    monkeypatch.setenv("ECOKATSU_ENV", "development")  # the suite's published dev secrets
    get_settings.cache_clear()
    try:
        # in a thread: the command runs its own event loop
        printed = await asyncio.to_thread(
            CliRunner().invoke, app, ["funnel", "--task-queue", queue]
        )
    finally:
        get_settings.cache_clear()
    assert printed.exit_code == 0, printed.output
    assert "awaiting_application" in printed.output
    assert "converted (reached enrolled) in the last 30 days: 1" in printed.output
