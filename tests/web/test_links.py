"""Each state of the mailed link has its own page; the holder-confirmation wait has one;
sessions, CSRF and headers are as promised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.async_api import Page, expect

from api.services.signup import SignupService
from domain.errors import ErrorCode, message_for
from domain.signup import LinkStatus
from tests.factories import add_customer, random_id
from tests.waiting import eventually
from tests.web.conftest import WebStack
from tests.web.journey import (
    agree_and_enter_gateway,
    apply_for,
    begin,
    fill_customer,
    link_from_mail,
    log_in,
    request_link,
)

Shot = Callable[[Page, str], Any]


async def assert_link_page(page: Page, link: str, state: LinkStatus) -> None:
    await page.goto(link)
    alert = page.locator(f'[data-link-state="{state.value}"]')
    await expect(alert).to_have_text(message_for(state.value))


async def test_each_link_state_has_its_page(web_short_links: WebStack, shot: Shot) -> None:
    web = web_short_links
    page = await web.phone()
    email = f"links-{random_id(8).lower()}@example.com"

    # unknown
    await assert_link_page(page, "/points/registration#not-a-token", LinkStatus.LINK_UNKNOWN)
    await shot(page, "20-link-unknown")

    # replaced: a second request mails a new link and kills the first
    await request_link(page, email)
    first = await link_from_mail(web.sink, email, 1)
    await request_link(page, email)
    second = await link_from_mail(web.sink, email, 2)
    await assert_link_page(page, first, LinkStatus.LINK_REPLACED)
    await shot(page, "21-link-replaced")

    # used: STEP1 spent it; opened again (another browser), it says so
    await begin(page, second)
    other = await web.phone()
    await assert_link_page(other, second, LinkStatus.LINK_USED)
    await expect(other.get_by_role("link", name="メールアドレスの入力へ")).to_be_visible()
    await shot(other, "22-link-used")

    # expired: 3 s in this stack; the page says how to ask again
    stale = f"stale-{random_id(8).lower()}@example.com"
    await request_link(other, stale)
    expiring = await link_from_mail(web.sink, stale)
    token = expiring.split("#", 1)[1]
    signups = SignupService(web.env.client, web.engine, web.settings)

    async def expired() -> bool:
        return (await signups.link_state(token)).state == LinkStatus.LINK_EXPIRED

    await eventually(expired, what="the link expired")
    await assert_link_page(other, expiring, LinkStatus.LINK_EXPIRED)
    await shot(other, "23-link-expired")
    await other.get_by_role("link", name="メールアドレスの入力へ").click()
    await expect(other.get_by_role("heading", name="メールアドレスの入力")).to_be_visible()
    await page.context.close()
    await other.context.close()


async def test_a_strangers_address_waits_for_the_holder(web: WebStack, shot: Shot) -> None:
    """Knowing the two IDs is not enough: 登録する leads to the waiting page."""
    customer = add_customer(web.engine)
    page = await web.phone()
    await log_in(page, customer)
    await apply_for(page, customer.eligible_gateway)
    stranger = f"stranger-{random_id(8).lower()}@example.com"
    await request_link(page, stranger)
    await begin(page, await link_from_mail(web.sink, stranger))
    await agree_and_enter_gateway(page, customer.eligible_gateway, customer.eligible_pcs)
    await fill_customer(page)
    await page.get_by_role("button", name="次へ").click()
    await page.get_by_role("button", name="登録する").click()
    await expect(page.get_by_role("heading", name="アカウントの方の確認待ち")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text(
        message_for(ErrorCode.HOLDER_CONFIRMATION_PENDING)
    )
    await shot(page, "24-holder-pending")
    await page.get_by_role("link", name="登録内容の確認へ戻る").click()
    await expect(page.get_by_text("アカウントの方の確認をお待ちしています")).to_be_visible()

    # The holder follows the link of the mail sent to the circle account's address.
    def asked() -> list[str]:
        return [
            link
            for m in web.sink.handler.received
            if m.envelope_to == [customer.email]
            for link in m.links
            if link.startswith(f"{web.base}/site/points-confirmation#")
        ]

    [holder_link] = await eventually(asked, what="the holder's mail")
    holder = await web.phone()
    await holder.goto(holder_link)
    await expect(holder.get_by_text(customer.eligible_gateway)).to_be_visible()
    await expect(holder.locator(".pairs")).not_to_contain_text(stranger)  # masked
    await shot(holder, "26-holder-request")
    await holder.get_by_role("button", name="承認する").click()
    await expect(holder.get_by_role("status")).to_contain_text("承認しました。")
    await holder.goto(holder_link)  # single use
    await expect(holder.get_by_role("status")).to_have_text(
        message_for(ErrorCode.CONFIRMATION_USED)
    )
    await holder.context.close()

    await page.get_by_role("button", name="登録する").click()
    await expect(page.get_by_role("heading", name="登録完了")).to_be_visible()
    await page.context.close()


async def test_sessions_forms_and_headers(web: WebStack) -> None:
    async with httpx.AsyncClient(base_url=web.base) as http:
        login = await http.get("/site/login")
        assert login.status_code == 200
        policy = login.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "<script>" not in login.text and " style=" not in login.text
        # A form without its CSRF token changes nothing.
        refused = await http.post(
            "/site/login",
            content="user_id=a%40example.com&password=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert refused.status_code == 400
        assert "有効期限が切れた" in refused.text
        # A tampered cookie is no session.
        http.cookies.set("eco_web", "tampered", domain="127.0.0.1")
        menu = await http.get("/site/menu")
        assert menu.status_code == 303 and menu.headers["location"] == "/site/login"
        # The dev inbox exists only when configured.
        assert (await http.get("/dev/mail")).status_code == 404
