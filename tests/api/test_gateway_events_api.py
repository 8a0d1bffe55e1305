"""POST /v1/system/accounts/{account_id}/gateways: the monitoring system's gateway changes
reach the journey (dev server, real worker, SMTP sink)."""

from __future__ import annotations

from typing import Any

from domain import search_attributes as sa
from domain.ids import enrollment_workflow_id
from tests.api.conftest import SYSTEM_KEY, Stack
from tests.api.test_journey_life import consent
from tests.factories import add_customer, random_id
from tests.waiting import eventually

SYSTEM = {"X-System-Key": SYSTEM_KEY}


def units_event(gateway_id: str, event_id: str = "") -> dict[str, Any]:
    return {
        "event_id": event_id or f"ev-{random_id(10)}",
        "kind": "units_changed",
        "gateway_id": gateway_id,
        "occurred_at": "2026-11-27T09:00:00+09:00",
        "pv_unit_in_use": True,
        "battery_unit_in_use": False,
    }


async def test_a_unit_out_of_use_flags_the_application_and_tells_the_customer(
    stack: Stack,
) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    await stack.call("POST", "/v1/journey", headers=auth)
    await consent(stack, auth)
    applied = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert applied.status_code == 201, applied.text
    path = f"/v1/system/accounts/{customer.account_id}/gateways"
    body = units_event(customer.eligible_gateway)

    first = await stack.call("POST", path, headers=SYSTEM, json=body)
    assert first.status_code == 201, first.text
    assert first.json() == {"event_id": body["event_id"], "recorded": True, "journey": "signalled"}
    again = await stack.call("POST", path, headers=SYSTEM, json=body)
    assert (again.status_code, again.json()["recorded"]) == (200, False)

    def notices() -> list[str]:
        return [
            m.text
            for m in stack.sink.received
            if m.envelope_to == [customer.email] and "お申込み内容に関するお知らせ" in m.subject
        ]

    [notice] = await eventually(lambda: notices(), what="the gateway notice")
    assert customer.eligible_gateway in notice
    assert "蓄電池ユニットを使用せず" in notice and "故障交換" in notice

    handle = stack.client.get_workflow_handle(enrollment_workflow_id(customer.account_id))

    async def flagged() -> bool | None:
        return (await handle.describe()).typed_search_attributes.get(sa.NEEDS_OPERATOR)

    await eventually(flagged, what="EcoNeedsOperator")
    gateways = (await stack.call("GET", "/v1/journey/gateways", headers=auth)).json()["gateways"]
    [mine] = [g for g in gateways if g["gateway_id"] == customer.eligible_gateway]
    assert (mine["eligible"], mine["reasons"], mine["application"]) == (
        False,
        ["battery_unit_not_in_use"],
        "active",
    )
    assert len(notices()) == 1  # the repeated event mailed nothing


async def test_refusals_and_a_journey_that_is_not_running(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    path = f"/v1/system/accounts/{customer.account_id}/gateways"
    body = units_event(customer.eligible_gateway)

    wrong_key = await stack.call("POST", path, headers={"X-System-Key": "nope"}, json=body)
    assert wrong_key.status_code == 403
    incomplete = await stack.call(
        "POST", path, headers=SYSTEM, json={**body, "battery_unit_in_use": None}
    )
    assert incomplete.status_code == 422
    assert incomplete.json()["detail"] == [
        {
            "loc": ["body", "battery_unit_in_use"],
            "code": "gateway_event_incomplete",
            "message": incomplete.json()["detail"][0]["message"],
        }
    ]
    unknown = await stack.call(
        "POST", f"/v1/system/accounts/{'0' * 32}/gateways", headers=SYSTEM, json=body
    )
    assert (unknown.status_code, unknown.json()["detail"][0]["code"]) == (
        404,
        "account_not_found",
    )
    # No journey was started for this account: recorded only.
    recorded = await stack.call("POST", path, headers=SYSTEM, json=body)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["journey"] == "not_running"
    conflict = await stack.call("POST", path, headers=SYSTEM, json={**body, "kind": "removed"})
    assert (conflict.status_code, conflict.json()["detail"][0]["code"]) == (
        409,
        "gateway_event_conflict",
    )
