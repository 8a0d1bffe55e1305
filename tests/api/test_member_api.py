"""The スマイルeポイント member's side through the API, on a dev server with a real worker
and a real SMTP sink: links are read out of the delivered mails."""

from __future__ import annotations

from typing import Any

from config import Settings
from devtools.mailsink import ReceivedMail
from tests.api.conftest import SYSTEM_KEY, Stack
from tests.api.test_signup_api import CUSTOMER, PASSWORD, applied_customer, link_token
from tests.factories import PASSWORD as FACTORY_PASSWORD
from tests.factories import add_customer, add_points_member
from tests.waiting import eventually

POINTS_FROM = "株式会社NTTスマイルエナジー <noreply_cr@nttse.com>"
CIRCLE_FROM = "遠隔モニタリングサービス <noreply@eco-katsu.example>"
VERSIONS = {"service_terms_version": "2022-07-01", "privacy_policy_version": "2022-07-01"}


async def mail_to(stack: Stack, address: str, subject_has: str) -> ReceivedMail:
    def found() -> ReceivedMail | None:
        hits = [
            m
            for m in stack.sink.received
            if m.envelope_to == [address] and subject_has in m.subject
        ]
        return hits[-1] if hits else None

    return await eventually(found, what=f"mail {subject_has}")


def count_to(stack: Stack, address: str, subject_has: str) -> int:
    return sum(
        1 for m in stack.sink.received if m.envelope_to == [address] and subject_has in m.subject
    )


async def register(stack: Stack, customer: Any, email: str) -> None:
    """STEP1–6 with the circle account's own address (no holder confirmation)."""
    before = len(stack.sink.received)
    assert (
        await stack.call("POST", "/v1/points/signups", json={"email": email})
    ).status_code == 202
    token = await link_token(stack, email, before + 1)
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    session = {"X-Signup-Session": begun.json()["session"]}
    for doc in ("smile_e_point_terms", "smile_e_point_privacy"):
        await stack.call("GET", f"/v1/points/signup/documents/{doc}", headers=session)
    await stack.call(
        "POST", "/v1/points/signup/agreement", headers=session, json={"agree": True, **VERSIONS}
    )
    gateway = {"gateway_id": customer.eligible_gateway, "pcs_serial": customer.eligible_pcs}
    assert (
        await stack.call("POST", "/v1/points/signup/gateway", headers=session, json=gateway)
    ).status_code == 204
    await stack.call("POST", "/v1/points/signup/customer", headers=session, json=CUSTOMER)
    registered = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert registered.status_code == 200, registered.text
    await mail_to(stack, email, "会員登録完了")


async def member_login(stack: Stack, email: str, password: str = PASSWORD) -> dict[str, str]:
    answer = await stack.call(
        "POST", "/v1/points/member/session", json={"email": email, "password": password}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["detail"][0]["code"]


async def test_member_looks_changes_email_and_cancels_for_good(stack: Stack) -> None:
    customer, circle = await applied_customer(stack)
    await register(stack, customer, customer.email)
    welcome = await mail_to(stack, customer.email, "会員登録完了")
    invitation = await mail_to(stack, customer.email, "ご案内")
    assert (str(welcome.message["From"]), str(invitation.message["From"])) == (
        POINTS_FROM,
        CIRCLE_FROM,
    )

    # Log in: the circle's token is not a member's, a wrong password is refused.
    assert code(await stack.call("GET", "/v1/points/member", headers=circle)) == (
        401,
        "member_session_invalid",
    )
    wrong = await stack.call(
        "POST", "/v1/points/member/session", json={"email": customer.email, "password": "x-Wrong-1"}
    )
    assert code(wrong) == (401, "login_failed")
    auth = await member_login(stack, customer.email)

    # 照会
    view = (await stack.call("GET", "/v1/points/member", headers=auth)).json()
    assert (view["gateway_id"], view["pcs_serial"], view["status"]) == (
        customer.eligible_gateway,
        customer.eligible_pcs,
        "active",
    )
    assert view["email"] == customer.email and view["registered_at"]
    assert sorted((d["document"], d["version"]) for d in view["documents"]) == [
        ("smile_e_point_privacy", "2022-07-01"),
        ("smile_e_point_terms", "2022-07-01"),
    ]
    assert view["email_change_expires_at"] is None

    # Change of e-mail: the link goes to the new address; a second request replaces it.
    new = "moved.member@example.com"
    first = await stack.call(
        "POST", "/v1/points/member/email", headers=auth, json={"new_email": new}
    )
    assert first.status_code == 202, first.text
    first_mail = await mail_to(stack, new, "メールアドレス変更の確認")
    assert str(first_mail.message["From"]) == POINTS_FROM
    [first_link] = [link for link in first_mail.links if "#" in link]
    assert first_link.startswith(Settings().points_email_change_url + "#")
    again = await stack.call(
        "POST", "/v1/points/member/email", headers=auth, json={"new_email": new}
    )
    assert again.json() == first.json()
    await eventually(lambda: count_to(stack, new, "メールアドレス変更の確認") == 2, what="2nd link")
    second_mail = await mail_to(stack, new, "メールアドレス変更の確認")
    [second_link] = [link for link in second_mail.links if "#" in link]
    assert second_link != first_link
    assert (await stack.call("GET", "/v1/points/member", headers=auth)).json()[
        "email_change_expires_at"
    ]

    old_token = first_link.split("#", 1)[1]
    replaced = await stack.call(
        "POST", "/v1/points/member/email/confirm", json={"token": old_token}
    )
    assert code(replaced) == (410, "email_change_replaced")
    token = second_link.split("#", 1)[1]
    done = await stack.call("POST", "/v1/points/member/email/confirm", json={"token": token})
    assert done.status_code == 200, done.text
    assert code(
        await stack.call("POST", "/v1/points/member/email/confirm", json={"token": token})
    ) == (410, "email_change_used")
    unknown = await stack.call("POST", "/v1/points/member/email/confirm", json={"token": "x" * 43})
    assert code(unknown) == (404, "email_change_unknown")
    changed = await mail_to(stack, new, "メールアドレス変更完了")
    notice = await mail_to(stack, customer.email, "ご登録メールアドレス変更のお知らせ")
    assert str(changed.message["From"]) == str(notice.message["From"]) == POINTS_FROM
    assert new not in notice.text  # the old mailbox is told, not given the new address
    view = (await stack.call("GET", "/v1/points/member", headers=auth)).json()
    assert (view["email"], view["email_change_expires_at"]) == (new, None)
    # the old address no longer logs in; the new one does
    assert code(
        await stack.call(
            "POST",
            "/v1/points/member/session",
            json={"email": customer.email, "password": PASSWORD},
        )
    ) == (401, "login_failed")
    auth = await member_login(stack, new)

    # 退会: the password again; then the session ends and nothing re-joins.
    assert code(
        await stack.call(
            "POST", "/v1/points/member/cancellation", headers=auth, json={"password": "Not-It-123"}
        )
    ) == (401, "login_failed")
    cancelled = await stack.call(
        "POST", "/v1/points/member/cancellation", headers=auth, json={"password": PASSWORD}
    )
    assert cancelled.status_code == 200, cancelled.text
    bye = await mail_to(stack, new, "退会手続き完了")
    assert str(bye.message["From"]) == POINTS_FROM
    assert code(await stack.call("GET", "/v1/points/member", headers=auth)) == (
        401,
        "member_session_invalid",
    )
    assert code(
        await stack.call(
            "POST", "/v1/points/member/session", json={"email": new, "password": PASSWORD}
        )
    ) == (401, "login_failed")

    # No re-join, end to end: the tombstoned address is told so by mail, and the
    # tombstoned gateway is refused at STEP3 under any other address.
    before = count_to(stack, new, "")
    assert (await stack.call("POST", "/v1/points/signups", json={"email": new})).status_code == 202

    def refusal() -> ReceivedMail | None:
        return stack.sink.received[-1] if count_to(stack, new, "") > before else None

    refused = await eventually(refusal, what="refusal")
    assert refused.envelope_to == [new] and "#" not in " ".join(refused.links)
    assert "再入会はできません" in refused.text
    other = "another.try@example.com"
    assert (
        await stack.call("POST", "/v1/points/signups", json={"email": other})
    ).status_code == 202
    other_token = await link_token(stack, other, len(stack.sink.received))
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": other_token, "service": "omron_monitoring"}
    )
    session = {"X-Signup-Session": begun.json()["session"]}
    for doc in ("smile_e_point_terms", "smile_e_point_privacy"):
        await stack.call("GET", f"/v1/points/signup/documents/{doc}", headers=session)
    await stack.call(
        "POST", "/v1/points/signup/agreement", headers=session, json={"agree": True, **VERSIONS}
    )
    gateway = {"gateway_id": customer.eligible_gateway, "pcs_serial": customer.eligible_pcs}
    assert code(
        await stack.call("POST", "/v1/points/signup/gateway", headers=session, json=gateway)
    ) == (409, "gateway_already_member")


async def test_a_taken_address_gets_the_same_answer_and_a_neutral_mail(stack: Stack) -> None:
    customer, _ = await applied_customer(stack)
    await register(stack, customer, customer.email)
    other, _ = await applied_customer(stack)
    await register(stack, other, other.email)
    auth = await member_login(stack, customer.email)
    free = await stack.call(
        "POST", "/v1/points/member/email", headers=auth, json={"new_email": "free.one@example.com"}
    )
    taken = await stack.call(
        "POST", "/v1/points/member/email", headers=auth, json={"new_email": other.email}
    )
    assert (taken.status_code, taken.json()) == (free.status_code, free.json())
    neutral = await mail_to(stack, other.email, "メールアドレス変更のお申込みについて")
    assert "#" not in " ".join(neutral.links) and str(neutral.message["From"]) == POINTS_FROM
    # the newer (taken) request replaced the free one's link too
    free_mail = await mail_to(stack, "free.one@example.com", "メールアドレス変更の確認")
    [link] = [link for link in free_mail.links if "#" in link]
    assert code(
        await stack.call(
            "POST", "/v1/points/member/email/confirm", json={"token": link.split("#", 1)[1]}
        )
    ) == (410, "email_change_replaced")
    same = await stack.call(
        "POST", "/v1/points/member/email", headers=auth, json={"new_email": customer.email}
    )
    assert code(same) == (422, "email_unchanged")


async def test_circle_cancellation_suspends_the_points_membership(stack: Stack) -> None:
    customer, circle = await applied_customer(stack)
    await register(stack, customer, customer.email)
    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=circle
    )
    assert cancelled.status_code == 200, cancelled.text
    told = await mail_to(stack, customer.email, "ポイント付与の一時停止")
    assert customer.eligible_gateway in told.text and str(told.message["From"]) == POINTS_FROM
    auth = await member_login(stack, customer.email)
    view = (await stack.call("GET", "/v1/points/member", headers=auth)).json()
    assert view["status"] == "suspended" and view["circle_cancelled_at"]
    listed = await stack.call(
        "GET", "/v1/system/points-members/suspended", headers={"X-System-Key": SYSTEM_KEY}
    )
    assert customer.eligible_gateway in [row["gateway_id"] for row in listed.json()]
    assert "@" not in listed.text


async def test_member_login_locks_after_failures_even_for_the_right_password(
    stack: Stack,
) -> None:
    customer = add_customer(stack.engine)
    add_points_member(stack.engine, customer)
    await member_login(stack, customer.email, FACTORY_PASSWORD)  # the right one works
    for _ in range(stack.settings.login_failures_per_account):
        wrong = await stack.call(
            "POST",
            "/v1/points/member/session",
            json={"email": customer.email, "password": "x-Wrong-1"},
        )
        assert code(wrong) == (401, "login_failed")
    locked = await stack.call(
        "POST",
        "/v1/points/member/session",
        json={"email": customer.email, "password": FACTORY_PASSWORD},
    )
    assert code(locked) == (429, "login_throttled")
    assert int(locked.headers["Retry-After"]) > 0
