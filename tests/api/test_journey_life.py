"""Issue 7 through the HTTP API, with the real outbox and SMTP sink: re-joining after 解約
and a terms revision while a journey waits for consent."""

from __future__ import annotations

from sqlmodel import Session, col, select

from store.tables import Consent
from tests.api.conftest import Stack
from tests.factories import add_customer, add_points_member
from tests.waiting import eventually, mails


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
