"""A rule refusal is one INFO line in the worker's log; a real failure keeps its traceback."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Stack
from tests.api.test_signup_api import applied_customer, link_token


async def test_a_refusal_is_one_info_line_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    customer, _ = await applied_customer(stack)
    await stack.sink.wait_for(2)
    email = "refused-in-the-log@example.com"
    await stack.call("POST", "/v1/points/signups", json={"email": email})
    token = await link_token(stack, email, 3)
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    session = {"X-Signup-Session": begun.json()["session"]}
    for doc in ("smile_e_point_terms", "smile_e_point_privacy"):
        await stack.call("GET", f"/v1/points/signup/documents/{doc}", headers=session)
    agreed = await stack.call(
        "POST",
        "/v1/points/signup/agreement",
        headers=session,
        json={
            "agree": True,
            "service_terms_version": "2022-07-01",
            "privacy_policy_version": "2022-07-01",
        },
    )
    assert agreed.status_code == 204, agreed.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        wrong = await stack.call(
            "POST",
            "/v1/points/signup/gateway",
            headers=session,
            json={"gateway_id": customer.eligible_gateway, "pcs_serial": "ZZZZ9999"},
        )
    assert wrong.json()["detail"][0]["code"] == "gateway_not_applied"
    temporal = [r for r in caplog.records if r.name.startswith("temporalio")]
    assert [r for r in temporal if r.levelno >= logging.WARNING or r.exc_info] == []
    [line] = [r for r in temporal if r.levelno == logging.INFO]
    assert "gateway_not_applied" in line.getMessage()
    assert "ZZZZ9999" not in caplog.text and email not in caplog.text


async def test_a_real_failure_still_carries_its_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay that refuses a mail for good (5xx) is a fault an operator must see."""
    stack.sink.handler.scripted_replies.append("554 5.7.1 refused for this test")
    with caplog.at_level(logging.INFO):
        await stack.call("POST", "/v1/points/signups", json={"email": "bounced@example.com"})
    failed = [r for r in caplog.records if r.name.startswith("temporalio.activity") and r.exc_info]
    assert failed and all(r.levelno == logging.WARNING for r in failed)
