"""The スマイルeポイント signup through the API, following the link out of the real mail."""

from __future__ import annotations

import asyncio
from typing import Any

from api.security import SignupSessions
from config import Settings
from devtools.mailsink import ReceivedMail
from domain.mail import MailKind
from store import signup as signup_store
from tests.api.conftest import Stack
from tests.factories import add_customer
from tests.history import closed_mail_activities, kinds
from tests.pii import assert_absent, history_bytes
from tests.waiting import eventually, mails
from tests.workflows.signup_harness import activities_done

FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
PASSWORD = "Sm1le-e-Point!"
CUSTOMER: dict[str, Any] = {
    "name": "笑顔 太郎",
    "furigana": "えがお　たろう",
    "address": {
        "postal_code": "５３０－０００１",
        "prefecture": "大阪府",
        "address": "大阪市北区梅田１ー２ー３",
    },
    "installation_same_as_address": False,
    "installation_address": {
        "postal_code": "100-0001",
        "prefecture": "東京都",
        "address": "千代田1-1",
    },
    "phone": ["０６", "1234", "5678"],
    "password": PASSWORD,
    "password_confirmation": PASSWORD,
}


async def applied_customer(stack: Stack) -> tuple[Any, dict[str, str]]:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    await stack.call("POST", "/v1/journey", headers=auth)
    await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": Settings().circle_terms_version},
    )
    applied = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert applied.status_code == 201
    return customer, auth


async def link_token(stack: Stack, email: str, count: int) -> str:
    """The token of the newest link mailed to ``email``, once at least ``count`` mails
    arrived and a link mail to that address is among them (other mails, such as the
    circle's completion mail, may arrive in either order: the link is mailed after the
    signup request was answered)."""
    await mails(stack.sink, count)

    def newest_link_mail() -> ReceivedMail | None:
        found = [
            m
            for m in stack.sink.received
            if m.envelope_to == [email] and "会員登録URLのお知らせ" in m.subject
        ]
        return found[-1] if found else None

    mail = await eventually(newest_link_mail, what=f"a link mail to {email}")
    [link] = [link for link in mail.links if "#" in link]
    assert link.startswith(Settings().points_registration_url + "#")
    return link.split("#", 1)[1]


async def test_signup_from_the_mailed_link_to_enrolled(stack: Stack) -> None:
    customer, auth = await applied_customer(stack)
    await mails(stack.sink, 2)  # invitation, application complete
    email = "smile.member@example.com"

    requested = await stack.call(
        "POST", "/v1/points/signups", json={"email": email.translate(FULLWIDTH)}
    )
    assert requested.status_code == 202, requested.text
    token = await link_token(stack, email, 3)
    assert len(token) >= 22  # at least 128 bits, URL-safe base64

    # Pressing 送信する again at once: the same screen, no new mail, and (the update being
    # refused by its validator) not one event more in the signup's history.
    signup_id = signup_store.open_signup(stack.engine, email).workflow_id  # the pending one
    signup = stack.client.get_workflow_handle(signup_id)
    await activities_done(signup)  # the link mail's completion is in history too
    events = len((await signup.fetch_history()).events)
    again_at_once = await stack.call("POST", "/v1/points/signups", json={"email": email})
    assert again_at_once.status_code == 202 and again_at_once.json() == requested.json()
    assert len((await signup.fetch_history()).events) == events
    assert len(stack.sink.received) == 3

    opened = await stack.call("POST", "/v1/points/link", json={"token": token})
    assert opened.json()["state"] == "valid" and opened.json()["expires_at"]
    assert (await stack.call("POST", "/v1/points/link", json={"token": token})).json()[
        "state"
    ] == "valid"

    other_site = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "chikuden_eco_megane"}
    )
    assert (other_site.status_code, other_site.json()["detail"][0]["code"]) == (
        422,
        "service_other_site",
    )
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    assert begun.status_code == 200, begun.text
    session = {"X-Signup-Session": begun.json()["session"]}
    used = await stack.call("POST", "/v1/points/link", json={"token": token})
    assert used.json()["state"] == "link_used" and "使用済み" in used.json()["message"]
    # The same submission again (a retry) attaches to the first: the same session, and
    # the token is still spent once.
    again = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    # (The token itself carries its signing time: compare what it stands for.)
    sessions = SignupSessions(stack.settings.secret_key.get_secret_value(), 3600)
    assert again.status_code == 200, again.text
    first_session = sessions.read(begun.json()["session"])
    assert first_session is not None
    assert sessions.read(again.json()["session"]) == first_session
    other = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "chikuden_eco_megane"}
    )
    assert (other.status_code, other.json()["detail"][0]["code"]) == (410, "link_used")

    early = await stack.call(
        "POST",
        "/v1/points/signup/agreement",
        headers=session,
        json={
            "agree": True,
            "service_terms_version": "2022-07-01",
            "privacy_policy_version": "2022-07-01",
        },
    )
    assert (early.status_code, early.json()["detail"][0]["code"]) == (
        409,
        "documents_not_presented",
    )
    for doc in ("smile_e_point_terms", "smile_e_point_privacy"):
        shown = await stack.call("GET", f"/v1/points/signup/documents/{doc}", headers=session)
        assert shown.status_code == 200 and len(shown.json()["content_sha256"]) == 64
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

    wrong = await stack.call(
        "POST",
        "/v1/points/signup/gateway",
        headers=session,
        json={"gateway_id": customer.eligible_gateway, "pcs_serial": "ZZZZ9999"},
    )
    assert (wrong.status_code, wrong.json()["detail"][0]["code"]) == (409, "gateway_not_applied")
    gateway = await stack.call(
        "POST",
        "/v1/points/signup/gateway",
        headers=session,
        json={
            "gateway_id": customer.eligible_gateway.translate(FULLWIDTH),
            "pcs_serial": customer.eligible_pcs.lower(),
        },
    )
    assert gateway.status_code == 204, gateway.text

    entered = await stack.call("POST", "/v1/points/signup/customer", headers=session, json=CUSTOMER)
    assert entered.status_code == 204, entered.text
    confirmation = (await stack.call("GET", "/v1/points/signup", headers=session)).json()
    assert confirmation["password"] == "********"
    assert confirmation["info"]["furigana"] == "エガオ\u3000タロウ"
    assert confirmation["info"]["address"] == {
        "postal_code": "530-0001",
        "prefecture": "大阪府",
        "address": "大阪市北区梅田1-2-3",
    }
    assert confirmation["info"]["phone"] == ["06", "1234", "5678"]
    assert (confirmation["gateway_id"], confirmation["pcs_serial"]) == (
        customer.eligible_gateway,
        customer.eligible_pcs,
    )
    assert PASSWORD not in str(confirmation)

    # Not the circle account's own address: the account holder confirms first
    # (tests/api/test_holder_api.py walks the refusals).
    assert confirmation["holder_confirmation"] == "pending"
    await stack.sink.wait_for(4)
    [asked] = [m for m in stack.sink.received if "会員登録の確認のお願い" in m.subject]
    assert asked.envelope_to == [customer.email] and "s***@example.com" in asked.text
    [confirm_link] = [
        link for link in asked.links if link.startswith(Settings().holder_confirmation_url + "#")
    ]
    confirmed = await stack.call(
        "POST", "/v1/holder-confirmation/confirm", json={"token": confirm_link.split("#", 1)[1]}
    )
    assert confirmed.status_code == 200, confirmed.text
    await stack.sink.wait_for(5)  # 承認のお知らせ to the signup's address

    first, second = await asyncio.gather(
        stack.call("POST", "/v1/points/signup/register", headers=session),
        stack.call("POST", "/v1/points/signup/register", headers=session),
    )
    assert first.status_code == second.status_code == 200, first.text
    assert first.json() == second.json()
    assert first.json()["name"] == "笑顔 太郎"

    # Registered, the signup closes once its mails went out; its complete history shows
    # the holder's approval notice and the one completion mail for the two submissions.
    assert kinds(await closed_mail_activities(signup)) == [
        MailKind.HOLDER_CONFIRMED,
        MailKind.SIGNUP_COMPLETE,
    ]

    # After registration every way back says so, in the signup's own words. (While the
    # signup is still open, its completion mail in flight, a late 登録する gets the same
    # 200 answer as the first; once it has closed, 409.)
    after = await stack.call("POST", "/v1/points/link", json={"token": token})
    assert after.json()["state"] == "signup_completed"
    begin_again = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    assert (begin_again.status_code, begin_again.json()["detail"][0]["code"]) == (
        409,
        "signup_completed",
    )
    # A late second click on 登録する (a retry) gets the registration's own answer, even
    # after the signup's workflow has closed.
    await stack.client.get_workflow_handle(signup_id).result()
    late_click = await stack.call("POST", "/v1/points/signup/register", headers=session)
    assert (late_click.status_code, late_click.json()) == (200, first.json())
    # With the workflow closed, the answer comes from the store, never from an error's
    # text: still signup_completed (it flipped to 404 journey_not_found under load).
    closed_begin = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    assert (closed_begin.status_code, closed_begin.json()["detail"][0]["code"]) == (
        409,
        "signup_completed",
    )

    await mails(stack.sink, 7)  # 会員登録完了, and the holder's 会員登録のお知らせ
    [notice] = [m for m in stack.sink.received if "会員登録のお知らせ】" in m.subject]
    assert notice.envelope_to == [customer.email] and "s***@example.com" in notice.text
    [complete] = [m for m in stack.sink.received if "会員登録完了のお知らせ" in m.subject]
    assert complete.envelope_to == [email]
    for expected in (
        "笑顔 太郎 様",
        f"ゲートウェイID: {customer.eligible_gateway}",
        f"パワーコンディショナ製造番号: {customer.eligible_pcs}",
        "スマイルeポイントサービス利用規約",
        "個人情報の取扱い",
    ):
        assert expected in complete.text
    assert Settings().points_login_url in complete.links

    async def enrolled() -> dict[str, Any] | None:
        journey: dict[str, Any] = (await stack.call("GET", "/v1/journey", headers=auth)).json()
        return journey if journey["stage"] == "enrolled" else None

    journey = await eventually(enrolled, what="the journey enrolled (the signup's signal)")
    assert journey["points_member_gateway_id"] == customer.eligible_gateway

    # Nothing personal in plaintext in what Temporal keeps.
    signup_ids = [
        wf.id async for wf in stack.client.list_workflows("WorkflowType = 'PointSignupWorkflow'")
    ]
    assert signup_ids and all(email not in wid for wid in signup_ids)
    for wid in signup_ids:
        history = history_bytes(await stack.client.get_workflow_handle(wid).fetch_history())
        assert_absent(
            history, email, PASSWORD, '"1234","5678"', "06-1234-5678", "笑顔", "梅田", token
        )

    # The same address again: the same screen; the mail says it is already registered.
    again = await stack.call("POST", "/v1/points/signups", json={"email": email})
    assert again.status_code == 202 and again.json() == requested.json()
    await mails(stack.sink, 8)
    assert "会員登録についてのお知らせ" in stack.sink.received[-1].subject


async def test_customer_step_field_errors_never_echo(stack: Stack) -> None:
    await applied_customer(stack)
    email = "fields@example.com"
    await stack.call("POST", "/v1/points/signups", json={"email": email})
    token = await link_token(stack, email, 3)
    begun = await stack.call(
        "POST", "/v1/points/begin", json={"token": token, "service": "omron_monitoring"}
    )
    session = {"X-Signup-Session": begun.json()["session"]}

    bad = {
        **CUSTOMER,
        "furigana": "Taro",
        "phone": ["06", "12", "x"],
        "address": {"postal_code": "000-0000", "prefecture": "大阪府", "address": "1丁目2番地3号"},
        "name": "株式会社デモ",
    }
    response = await stack.call("POST", "/v1/points/signup/customer", headers=session, json=bad)
    assert response.status_code == 422
    codes = {tuple(i["loc"][1:]): i["code"] for i in response.json()["detail"]}
    assert codes[("name",)] == "corporate_name"
    assert codes[("furigana",)] == "invalid_furigana"
    assert codes[("phone",)] == "invalid_phone"
    assert codes[("address", "address")] == "address_use_hyphens"

    weak = await stack.call(
        "POST",
        "/v1/points/signup/customer",
        headers=session,
        json={**CUSTOMER, "password": "weakpass", "password_confirmation": "weakpass"},
    )
    assert weak.json()["detail"][0]["code"] == "invalid_password" and "weakpass" not in weak.text
    mismatch = await stack.call(
        "POST",
        "/v1/points/signup/customer",
        headers=session,
        json={**CUSTOMER, "password_confirmation": PASSWORD + "x"},
    )
    assert mismatch.json()["detail"][0] == {
        "loc": ["body", "password_confirmation"],
        "code": "password_mismatch",
        "message": "確認用パスワードがパスワードと一致しません。",
    }
    assert PASSWORD not in mismatch.text
    no_session = await stack.call("GET", "/v1/points/signup")
    assert (no_session.status_code, no_session.json()["detail"][0]["code"]) == (
        401,
        "session_invalid",
    )
    unknown = await stack.call("POST", "/v1/points/link", json={"token": "x" * 43})
    assert unknown.json()["state"] == "link_unknown"


async def test_mail_requests_are_rate_limited(stack_with_tight_limits: Stack) -> None:
    stack = stack_with_tight_limits
    answers = [
        (
            await stack.call("POST", "/v1/points/signups", json={"email": f"r{i}@example.com"})
        ).status_code
        for i in range(4)
    ]
    assert answers == [202, 202, 202, 429]


def test_no_route_takes_a_token_in_its_path_or_query() -> None:
    from api.main import create_app

    spec = create_app(Settings(env="development")).openapi()
    for path, methods in spec["paths"].items():
        assert "token" not in path
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                assert parameter["in"] != "query" or "token" not in parameter["name"]
