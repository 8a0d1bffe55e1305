"""Issue 7 through the HTTP API, with the real outbox and SMTP sink: re-joining after 解約,
a terms revision while a journey waits for consent, and an enrolled journey after it
continued as new."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from domain import search_attributes as sa
from domain.enrollment import PointsRegistered
from store.tables import Consent
from tests.api.conftest import SYSTEM_KEY, Stack
from tests.api.test_operator_api import key
from tests.factories import add_customer, add_points_member
from tests.waiting import eventually, mails
from workflows.enrollment import EnrollmentWorkflow


def invitations(stack: Stack, email: str) -> list[str]:
    return [
        m.subject
        for m in stack.sink.received
        if m.envelope_to == [email] and "お申込みのご案内" in m.subject
    ]


async def consent(stack: Stack, auth: dict[str, str]) -> None:
    terms = (await stack.call("GET", "/v1/terms")).json()
    answer = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": terms["version"]},
    )
    assert answer.status_code == 200, answer.text


async def test_rejoining_after_cancellation_reaches_enrolled_with_a_new_invitation(
    stack: Stack,
) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    gateway = {"gateway_id": customer.eligible_gateway}

    assert (await stack.call("POST", "/v1/journey", headers=auth)).status_code == 200
    await consent(stack, auth)
    applied = await stack.call("POST", "/v1/journey/applications", headers=auth, json=gateway)
    assert applied.status_code == 201, applied.text
    # The household is a スマイルeポイント member (as STEP6 leaves it).
    add_points_member(stack.engine, customer)
    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert cancelled.json()["stage"] == "withdrawn"

    again = await stack.call("POST", "/v1/journey", headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["stage"] == "awaiting_consent"
    # The new run's invitation is really sent (its outbox key is its own).
    await eventually(lambda: len(invitations(stack, customer.email)) == 2, what="2 invitations")
    await consent(stack, auth)
    applied = await stack.call("POST", "/v1/journey/applications", headers=auth, json=gateway)
    assert applied.status_code == 201, applied.text
    journey = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert journey["stage"] == "enrolled"
    assert journey["points_member_gateway_id"] == customer.eligible_gateway
    assert journey["next_reminder_at"] is None


async def test_cancelled_points_membership_is_told_at_apply(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    add_points_member(stack.engine, customer, status="cancelled")
    auth = await stack.login(customer)
    assert (await stack.call("POST", "/v1/journey", headers=auth)).status_code == 200
    await consent(stack, auth)
    refused = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert refused.status_code == 409
    [error] = refused.json()["detail"]
    assert error["code"] == "points_membership_cancelled"
    assert "再度ご登録いただけません" in error["message"]
    journey = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert journey["stage"] == "awaiting_application"


async def test_a_journey_started_before_a_terms_revision_consents_to_the_new_one(
    stack: Stack,
) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    started = await stack.call("POST", "/v1/journey", headers=auth)
    old = started.json()["circle_terms_version"]
    await mails(stack.sink, 1)

    # The revision is deployed: the API now serves a new version.
    stack.settings.circle_terms_version = "2099-01-01"
    terms = (await stack.call("GET", "/v1/terms")).json()
    assert terms["version"] == "2099-01-01" != old

    stale = await stack.call(
        "POST", "/v1/journey/consent", headers=auth, json={"agree": True, "terms_version": old}
    )
    assert stale.status_code == 422
    assert stale.json()["detail"][0]["code"] == "terms_version_outdated"
    await consent(stack, auth)
    journey = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert (journey["stage"], journey["circle_terms_version"]) == (
        "awaiting_application",
        "2099-01-01",
    )
    with Session(stack.engine) as session:
        rows = session.exec(
            select(Consent)
            .where(Consent.account_id == customer.account_id)
            .order_by(col(Consent.id))
        ).all()
    assert [(r.version, r.content_sha256, r.decision) for r in rows] == [
        ("2099-01-01", terms["content_sha256"], "agreed")
    ]


async def test_an_enrolled_journey_is_found_once_after_it_continued_as_new(stack: Stack) -> None:
    """Once enrolled, a journey continues as new: the customer, the operators' lists and
    the system list all see the one journey, in its running run, and 解約 still works."""
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    gateway = {"gateway_id": customer.eligible_gateway}
    workflow_id = (await stack.call("POST", "/v1/journey", headers=auth)).json()["workflow_id"]
    await consent(stack, auth)
    applied = await stack.call("POST", "/v1/journey/applications", headers=auth, json=gateway)
    assert applied.status_code == 201, applied.text
    handle = stack.client.get_workflow_handle(workflow_id)
    first_run = (await handle.describe()).run_id
    await handle.signal(
        EnrollmentWorkflow.points_registered,
        PointsRegistered(gateway_id=customer.eligible_gateway, registered_at=datetime.now(UTC)),
    )

    # Visibility has both runs: the first as continued, the next running and enrolled.
    async def both_runs_visible() -> bool:
        runs = {
            wf.run_id: (wf.status.name if wf.status else "", wf.typed_search_attributes)
            async for wf in stack.client.list_workflows(f"WorkflowId = '{workflow_id}'")
        }
        return runs.get(first_run, ("", None))[0] == "CONTINUED_AS_NEW" and any(
            status == "RUNNING" and attrs.get(sa.STAGE) == "enrolled"
            for status, attrs in runs.values()
        )

    await eventually(both_runs_visible, what="the continued run and the next one listed")

    journey = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert journey["stage"] == "enrolled"
    assert journey["points_member_gateway_id"] == customer.eligible_gateway

    operator = await key(stack)
    system = {"X-System-Key": SYSTEM_KEY}
    for path, headers in (("/v1/operator/journeys", operator), ("/v1/system/journeys", system)):
        answer = await stack.call("GET", path, params={"stage": "enrolled"}, headers=headers)
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = [
            r for r in answer.json()["journeys"] if r["workflow_id"] == workflow_id
        ]
        assert [(r["run_status"], r["stage"]) for r in rows] == [("RUNNING", "enrolled")], path
        if path == "/v1/operator/journeys":
            # The query it ran (the UI's filter) matches the running run alone.
            [query] = answer.json()["queries"]
            found = [wf.run_id async for wf in stack.client.list_workflows(query)]
            assert first_run not in found

    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["stage"] == "withdrawn"
