"""Operators on the dev server: find a stuck journey by the UI's own query, act on it
through /v1/operator, and find every action (and every refusal) in the audit table."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from config import ROOT
from devtools.mailsink import MailSink
from domain.mail import MailKind
from domain.operators import StuckPolicy
from store import audit, operators
from store.operators import Role
from tests.api.conftest import SYSTEM_KEY, Stack, _stack, settings_for
from tests.factories import add_customer
from tests.history import completed_mail
from tests.waiting import eventually


async def key(stack: Stack) -> dict[str, str]:
    """An operator's own credentials (operator ``system``, role operator): the monitoring
    system's key does not admit anyone to /v1/operator."""
    if operators.by_name(stack.engine, "system") is None:
        operators.add(stack.engine, "system", Role.OPERATOR)
    return {"Authorization": f"Bearer {operators.issue_token(stack.engine, 'system')}"}


@pytest.fixture
async def stuck_now(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> AsyncIterator[Stack]:
    """A stack whose "awaiting consent" is stuck at once (the rule's age is zero)."""
    settings = settings_for(
        sqlite_url, mail_sink, stuck=StuckPolicy(awaiting_consent_after=timedelta(0))
    )
    async for s in _stack(dev_env, settings, mail_sink, True):
        yield s


async def started_journey(stack: Stack) -> str:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    answer = await stack.call("POST", "/v1/journey", headers=auth)
    workflow_id: str = answer.json()["workflow_id"]
    return workflow_id


async def action(stack: Stack, workflow_id: str, name: str, reason: str = "test") -> Any:
    return await stack.call(
        "POST",
        f"/v1/operator/journeys/{workflow_id}/actions/{name}",
        json={"reason": reason},
        headers=await key(stack),
    )


async def test_find_a_stuck_journey_by_the_ui_query_and_act_on_it(stuck_now: Stack) -> None:
    stack = stuck_now
    workflow_id = await started_journey(stack)

    async def listed() -> tuple[list[str], dict[str, Any]] | None:
        answer = await stack.call(
            "GET",
            "/v1/operator/journeys",
            params={"stuck": "true", "stage": "awaiting_consent"},
            headers=await key(stack),
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows = {r["workflow_id"]: r for r in body["journeys"]}
        return (body["queries"], rows[workflow_id]) if workflow_id in rows else None

    queries, row = await eventually(listed, what="the stuck journey listed (visibility lags)")
    assert row["reasons"] == ["awaiting_consent for over 0d"]
    assert row["next_action"] == "resend (invitation)"
    # The query the API ran is the UI's: pasted into the list filter, it finds the journey.
    age_query = next(q for q in queries if "EcoStageEnteredAt" in q)
    assert "EcoStage = 'awaiting_consent'" in age_query
    found = [wf.id async for wf in stack.client.list_workflows(age_query)]
    assert workflow_id in found

    resent = await action(stack, workflow_id, "resend", "customer says no mail arrived")
    assert resent.status_code == 200, resent.text
    assert resent.json()["detail"] == "invitation"
    handle = stack.client.get_workflow_handle(workflow_id)
    assert len(await completed_mail(handle, MailKind.INVITATION, count=2)) == 2

    cancelled = await action(stack, workflow_id, "cancel", "customer asked to stop")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["after_stage"] == "cancelled"
    await completed_mail(handle, MailKind.JOURNEY_CANCELLED)
    closed = await action(stack, workflow_id, "resend")
    assert closed.status_code == 409
    assert closed.json()["detail"][0]["code"] == "journey_closed"


async def test_the_audit_has_every_action_and_every_refusal(stack: Stack) -> None:
    workflow_id = await started_journey(stack)
    done = ["resend", "extend", "recheck_eligibility", "cancel"]
    refused = {"revive": "not_dormant", "clear_flag": "not_flagged"}
    for name in ["resend", "extend", "revive", "clear_flag", "recheck_eligibility", "cancel"]:
        answer = await action(stack, workflow_id, name, f"reason for {name}")
        if name in refused:
            assert answer.status_code == 409, answer.text
            assert answer.json()["detail"][0]["code"] == refused[name]
        else:
            assert answer.status_code == 200, answer.text

    # Refused before reaching a workflow: a wrong key (no row: not an operator), an
    # unknown workflow, a bad body (no row: nothing was asked).
    assert (
        await stack.call(
            "POST",
            f"/v1/operator/journeys/{workflow_id}/actions/resend",
            json={"reason": "x"},
            headers={"X-System-Key": SYSTEM_KEY},  # the system's key is not an operator's
        )
    ).status_code == 401
    missing = await action(stack, "enrollment-" + "0" * 32, "resend")
    assert missing.status_code == 404
    empty = await action(stack, workflow_id, "resend", "")
    assert empty.status_code == 422

    rows = [r for r in audit.for_workflow(stack.engine, workflow_id) if r.operator == "system"]
    assert [(r.action, r.outcome) for r in rows] == [
        (name, "done" if name in done else refused[name])
        for name in ["resend", "extend", "revive", "clear_flag", "recheck_eligibility", "cancel"]
    ]
    assert all(r.operator == "system" for r in rows)
    assert rows[0].reason == "reason for resend"
    assert (rows[-1].stage_before, rows[-1].stage_after) == ("awaiting_consent", "cancelled")
    assert (rows[2].stage_before, rows[2].stage_after) == ("awaiting_consent", "awaiting_consent")
    assert [r.outcome for r in audit.for_workflow(stack.engine, "enrollment-" + "0" * 32)] == [
        "journey_not_found"
    ]

    # The history holds each accepted update with the operator's request (encrypted).
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    updates = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert updates.count("operator_action") == len(done)


async def test_a_retried_action_with_the_same_key_runs_once(stack: Stack) -> None:
    workflow_id = await started_journey(stack)
    headers = {**(await key(stack)), "Idempotency-Key": "op-retry-1"}
    path = f"/v1/operator/journeys/{workflow_id}/actions/resend"
    first = await stack.call("POST", path, json={"reason": "r"}, headers=headers)
    again = await stack.call("POST", path, json={"reason": "r"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["at"] == again.json()["at"]
    handle = stack.client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert accepted.count("operator_action") == 1  # beside the start's settle_start


async def test_listing_refuses_an_unknown_stage_and_a_wrong_key(stack: Stack) -> None:
    bad = await stack.call(
        "GET", "/v1/operator/journeys", params={"stage": "nope"}, headers=await key(stack)
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["code"] == "invalid_input"
    # No operator credentials at all: 401 operator_unauthenticated (audited).
    assert (await stack.call("GET", "/v1/operator/journeys")).status_code == 401


def cli(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``cli.py`` as an operator runs it, against the same servers and store."""
    settings = stack.settings
    environment = {
        **os.environ,
        "ECOKATSU_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "ECOKATSU_TEMPORAL_NAMESPACE": stack.client.namespace,
        "ECOKATSU_CODEC_KEYS": json.dumps(
            {k: v.get_secret_value() for k, v in settings.codec_keys.items()}
        ),
        "ECOKATSU_CODEC_KEY_ID": settings.codec_key_id,
        "DATABASE_URL": settings.database_url,
        "ECOKATSU_ENV": "development",  # the suite's published dev secrets
        **env,
    }
    return subprocess.run(  # noqa: S603 (our own argv)
        [sys.executable, str(ROOT / "cli.py"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_lists_the_same_stuck_set_and_acts_with_an_audit(stuck_now: Stack) -> None:
    stack = stuck_now
    workflow_id = await started_journey(stack)

    async def api_set() -> set[str] | None:
        answer = await stack.call(
            "GET", "/v1/operator/journeys", params={"stuck": "true"}, headers=await key(stack)
        )
        ids = {r["workflow_id"] for r in answer.json()["journeys"]}
        return ids if workflow_id in ids else None

    listed = await eventually(api_set, what="the stuck journey listed")
    shown = await asyncio.to_thread(
        cli, stack, "journeys", "--stuck", "--queries", ECOKATSU_STUCK_AWAITING_CONSENT_AFTER="PT0S"
    )
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if not line.startswith("query: ")]
    # Other tests' journeys on the shared server may close in between: compare what both
    # API answers (before and after the CLI) agree on.
    still = await api_set() or set()
    assert {line.split()[0] for line in rows} >= listed & still
    mine = next(line for line in rows if line.startswith(workflow_id))
    assert "stuck: awaiting_consent for over 0d" in mine and "next: resend (invitation)" in mine
    assert any("EcoStage = 'awaiting_consent'" in line for line in shown.stdout.splitlines())

    unknown = await asyncio.to_thread(
        cli, stack, "act", workflow_id, "extend", "--reason", "x", "--operator", "mallory"
    )
    assert unknown.returncode == 2 and "not an enabled operator" in unknown.stderr
    operators.add(stack.engine, "alice", Role.OPERATOR)
    refused = await asyncio.to_thread(
        cli, stack, "act", workflow_id, "clear_flag", "--reason", "nothing", "--operator", "alice"
    )
    assert refused.returncode == 1 and "not_flagged" in refused.stderr
    done = await asyncio.to_thread(
        cli, stack, "act", workflow_id, "extend", "--reason", "on holiday", "--operator", "alice"
    )
    assert done.returncode == 0, done.stderr
    assert "extend: awaiting_consent -> awaiting_consent" in done.stdout
    rows_audited = audit.for_workflow(stack.engine, workflow_id)
    assert [(r.operator, r.action, r.outcome) for r in rows_audited] == [
        ("alice", "clear_flag", "not_flagged"),
        ("alice", "extend", "done"),
    ]
