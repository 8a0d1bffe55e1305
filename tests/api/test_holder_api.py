"""Knowing the two IDs is not enough, through the API: a real dev server, worker, SMTP
server and SQLite; every link is read from the delivered mail."""

from __future__ import annotations

import asyncio
import re

from sqlmodel import Session, select

from config import Settings
from devtools.mailsink import ReceivedMail
from store.tables import PointsMember
from tests.api.conftest import Stack
from tests.api.test_signup_api import CUSTOMER, applied_customer

TERMS = {
    "agree": True,
    "service_terms_version": "2022-07-01",
    "privacy_policy_version": "2022-07-01",
}


async def mail(stack: Stack, to: str, subject_part: str, count: int = 1) -> ReceivedMail:
    for _ in range(200):
        found = [
            m for m in stack.sink.received if m.envelope_to == [to] and subject_part in m.subject
        ]
        if len(found) >= count:
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail {subject_part!r} to {to}")


def fragment(received: ReceivedMail, url: str) -> str:
    [link] = [link for link in received.links if link.startswith(url + "#")]
    return link.split("#", 1)[1]


async def agreed_session(stack: Stack, email: str) -> dict[str, str]:
    """メールアドレスの入力 → the mailed link → STEP1 → STEP2 (both documents, agreed)."""
    assert (
        await stack.call("POST", "/v1/points/signups", json={"email": email})
    ).status_code == 202
    token = fragment(
        await mail(stack, email, "会員登録URLのお知らせ"), Settings().points_registration_url
    )
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    assert begun.status_code == 200, begun.text
    session = {"X-Signup-Session": begun.json()["session"]}
    for doc in ("smile_e_point_terms", "smile_e_point_privacy"):
        await stack.call("GET", f"/v1/points/signup/documents/{doc}", headers=session)
    agreed = await stack.call("POST", "/v1/points/signup/agreement", headers=session, json=TERMS)
    assert agreed.status_code == 204, agreed.text
    return session


async def to_confirmation(stack: Stack, email: str, gateway: str, pcs: str) -> dict[str, str]:
    session = await agreed_session(stack, email)
    entered = await stack.call(
        "POST",
        "/v1/points/signup/gateway",
        headers=session,
        json={"gateway_id": gateway, "pcs_serial": pcs},
    )
    assert entered.status_code == 204, entered.text
    customer = await stack.call(
        "POST", "/v1/points/signup/customer", headers=session, json=CUSTOMER
    )
    assert customer.status_code == 204, customer.text
    return session


def code_of(response: object) -> tuple[int, str]:
    return response.status_code, response.json()["detail"][0]["code"]  # type: ignore[attr-defined]


async def stage(stack: Stack, auth: dict[str, str]) -> str:
    return str((await stack.call("GET", "/v1/journey", headers=auth)).json()["stage"])


async def test_the_two_ids_from_the_completion_mail_are_not_enough(stack: Stack) -> None:
    customer, auth = await applied_customer(stack)
    # The attacker has seen the completion mail (申込完了のお知らせ): both IDs are in it.
    completion = (await mail(stack, customer.email, "お申込み完了のお知らせ")).text
    gateway = re.search(r"ゲートウェイID： (\w+)", completion).group(1)  # type: ignore[union-attr]
    pcs = re.search(r"パワーコンディショナ製造番号： (\w+)", completion).group(1)  # type: ignore[union-attr]
    stranger = "stranger@example.com"
    session = await to_confirmation(stack, stranger, gateway, pcs)

    view = (await stack.call("GET", "/v1/points/signup", headers=session)).json()
    assert view["holder_confirmation"] == "pending" and view["holder_confirmation_expires_at"]
    register = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert code_of(register) == (409, "holder_confirmation_pending")
    assert "承認" in register.json()["detail"][0]["message"]
    assert await stage(stack, auth) == "awaiting_points_signup"

    # The holder is asked, at the circle account's address, with the stranger's masked.
    asked = await mail(stack, customer.email, "会員登録の確認のお願い")
    assert gateway in asked.text and "s***@example.com" in asked.text
    assert stranger not in asked.text
    token = fragment(asked, Settings().holder_confirmation_url)
    for _ in range(2):  # opening (a mail scanner, say) spends nothing
        page = (await stack.call("POST", "/v1/holder-confirmation", json={"token": token})).json()
        assert page["state"] == "valid"
        assert page["request"]["email"] == "s***@example.com"
        assert page["request"]["gateway_id"] == gateway
    listed = (await stack.call("GET", "/v1/journey/confirmations", headers=auth)).json()
    assert [c["gateway_id"] for c in listed["confirmations"]] == [gateway]
    assert (await stack.call("GET", "/v1/journey/confirmations")).status_code == 401

    declined = await stack.call("POST", "/v1/holder-confirmation/decline", json={"token": token})
    assert declined.status_code == 200, declined.text
    assert declined.json()["holder_confirmation"] == "declined"
    again = await stack.call("POST", "/v1/holder-confirmation/confirm", json={"token": token})
    assert code_of(again) == (410, "confirmation_used")
    unknown = await stack.call("POST", "/v1/holder-confirmation/confirm", json={"token": "x" * 43})
    assert code_of(unknown) == (404, "confirmation_unknown")
    ended = await mail(stack, stranger, "手続き終了のお知らせ")
    assert gateway not in ended.text and customer.email not in ended.text
    late = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert code_of(late) == (409, "holder_declined")
    assert await stage(stack, auth) == "awaiting_points_signup"

    # The household itself: its own address goes straight through, and it is told.
    own = await to_confirmation(stack, customer.email, gateway, pcs)
    own_view = (await stack.call("GET", "/v1/points/signup", headers=own)).json()
    assert own_view["holder_confirmation"] == "not_needed"
    registered = await stack.call("POST", "/v1/points/signup/register", headers=own)
    assert registered.status_code == 200, registered.text
    notice = await mail(stack, customer.email, "会員登録のお知らせ")
    assert gateway in notice.text and f"{customer.email[0]}***@example.com" in notice.text
    for _ in range(50):
        if await stage(stack, auth) == "enrolled":
            break
        await asyncio.sleep(0.1)
    assert await stage(stack, auth) == "enrolled"


async def test_the_holder_confirms_in_the_circle_session(stack: Stack) -> None:
    customer, auth = await applied_customer(stack)
    family = "family@example.com"
    session = await to_confirmation(stack, family, customer.eligible_gateway, customer.eligible_pcs)
    await mail(stack, customer.email, "会員登録の確認のお願い")
    [pending] = (await stack.call("GET", "/v1/journey/confirmations", headers=auth)).json()[
        "confirmations"
    ]
    assert pending["email"] == "f***@example.com"
    other, other_auth = await applied_customer(stack)  # not theirs to answer
    foreign = await stack.call(
        "POST",
        f"/v1/journey/confirmations/{pending['confirmation_id']}/confirm",
        headers=other_auth,
    )
    assert code_of(foreign) == (404, "confirmation_unknown")

    confirmed = await stack.call(
        "POST", f"/v1/journey/confirmations/{pending['confirmation_id']}/confirm", headers=auth
    )
    assert confirmed.status_code == 200 and confirmed.json()["holder_confirmation"] == "confirmed"
    await mail(stack, family, "承認のお知らせ")
    assert (await stack.call("GET", "/v1/journey/confirmations", headers=auth)).json() == {
        "confirmations": []
    }
    registered = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert registered.status_code == 200, registered.text
    notice = await mail(stack, customer.email, "会員登録のお知らせ")
    assert "f***@example.com" in notice.text and family not in notice.text
    # Only the gateway's own holder hears of it.
    assert not [
        m for m in stack.sink.received if m.envelope_to == [other.email] and "会員登録" in m.subject
    ]


async def test_no_member_on_a_cancelled_application(stack: Stack) -> None:
    """STEP3 matched, then the circle application was cancelled: register refuses."""
    customer, auth = await applied_customer(stack)
    session = await agreed_session(stack, customer.email)
    entered = await stack.call(
        "POST",
        "/v1/points/signup/gateway",
        headers=session,
        json={"gateway_id": customer.eligible_gateway, "pcs_serial": customer.eligible_pcs},
    )
    assert entered.status_code == 204, entered.text
    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert cancelled.status_code == 200, cancelled.text
    await stack.call("POST", "/v1/points/signup/customer", headers=session, json=CUSTOMER)
    register = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert code_of(register) == (409, "application_not_active")
    with Session(stack.engine) as db:
        assert db.exec(select(PointsMember)).all() == []


async def test_wrong_pairs_lock_the_signup_with_a_clear_message(stack: Stack) -> None:
    customer, _ = await applied_customer(stack)
    session = await agreed_session(stack, "prober@example.com")
    answers = []
    for n in range(5):
        wrong = await stack.call(
            "POST",
            "/v1/points/signup/gateway",
            headers=session,
            json={"gateway_id": customer.eligible_gateway, "pcs_serial": f"ZZZZ000{n}"},
        )
        answers.append(code_of(wrong))
    assert answers == [(409, "gateway_not_applied")] * 4 + [(409, "signup_locked")]
    right = await stack.call(
        "POST",
        "/v1/points/signup/gateway",
        headers=session,
        json={"gateway_id": customer.eligible_gateway, "pcs_serial": customer.eligible_pcs},
    )
    assert code_of(right) == (409, "signup_locked")
    assert "ロック" in right.json()["detail"][0]["message"]
    view = (await stack.call("GET", "/v1/points/signup", headers=session)).json()
    assert view["gateway_entry_locked"] is True
