"""A rule refusal is one INFO line in the worker's log; a real failure keeps its traceback."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Stack
from tests.api.test_signup_api import applied_customer
from tests.factories import add_customer
from tests.waiting import eventually


async def test_a_refusal_is_one_info_line_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """申込確定 for a gateway the registry gives another account: the store activity refuses
    (``gateway_not_owned``), which the worker logs as one INFO line, no traceback."""
    customer, auth = await applied_customer(stack)
    other = add_customer(stack.engine)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        refused = await stack.call(
            "POST",
            "/v1/journey/applications",
            headers=auth,
            json={"gateway_id": other.eligible_gateway},
        )
    assert refused.json()["detail"][0]["code"] == "gateway_not_owned", refused.text
    temporal = [r for r in caplog.records if r.name.startswith("temporalio")]
    assert [r for r in temporal if r.levelno >= logging.WARNING or r.exc_info] == []
    [line] = [r for r in temporal if r.levelno == logging.INFO]
    assert "gateway_not_owned" in line.getMessage()
    worker_text = "\n".join(r.getMessage() for r in temporal)
    assert customer.email not in worker_text and other.email not in worker_text


async def test_a_real_failure_still_carries_its_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay that refuses a mail for good (5xx) is a fault an operator must see."""
    stack.sink.handler.scripted_replies.append("554 5.7.1 refused for this test")
    with caplog.at_level(logging.INFO):
        await stack.call("POST", "/v1/points/signups", json={"email": "bounced@example.com"})
        # The link is mailed after the answer: wait for the refused mail's log record.
        failed = await eventually(
            lambda: [
                r for r in caplog.records if r.name.startswith("temporalio.activity") and r.exc_info
            ],
            what="the refused mail's log record",
        )
    assert all(r.levelno == logging.WARNING for r in failed)
