"""Walking the guide's screens in the browser: the steps the tests share."""

from __future__ import annotations

from playwright.async_api import Page, expect

from devtools.mailsink import MailSink
from tests.factories import PASSWORD, Customer
from tests.waiting import eventually

NAME = "笑顔 太郎"
WEB_PASSWORD = "Sm1le-e-Point!"


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 360, f"{page.url} is {width} px wide at 360 px"


async def log_in(page: Page, customer: Customer) -> None:
    await page.goto("/site/login")
    await page.get_by_label("ユーザID").fill(customer.email)
    await page.get_by_label("パスワード").fill(PASSWORD)
    await page.get_by_role("button", name="ログイン").click()
    await expect(page.get_by_role("heading", name="メインメニュー")).to_be_visible()


async def apply_for(page: Page, gateway_id: str) -> None:
    """From the main menu: the circle, 同意する, the gateway, 申込確定 → 申込完了."""
    await page.get_by_role("link", name="みんなでつくるエコ活サークル").click()
    if await page.get_by_role("button", name="同意する").count():
        await page.get_by_role("button", name="同意する").click()
    await page.get_by_role("link", name=gateway_id, exact=True).click()
    await page.get_by_role("button", name="申込確定").click()
    await expect(page.get_by_role("heading", name="申込完了")).to_be_visible()


async def link_from_mail(sink: MailSink, email: str, nth: int = 1) -> str:
    """The registration link of the ``nth`` signup-link mail sent to ``email``."""

    def found() -> list[str]:
        links = [
            link
            for m in sink.handler.received
            if m.envelope_to == [email] and "会員登録URLのお知らせ" in m.subject
            for link in m.links
            if "/points/registration#" in link
        ]
        return links if len(links) >= nth else []

    return (await eventually(found, what=f"signup link mail #{nth}"))[nth - 1]


async def request_link(page: Page, email: str) -> None:
    await page.goto("/points/signup")
    await page.get_by_label("メールアドレス").fill(email)
    await page.get_by_role("button", name="送信する").click()
    await expect(page.get_by_role("heading", name="会員登録用メール送信完了")).to_be_visible()


async def begin(page: Page, link: str) -> None:
    """Open the mailed link (the script posts its fragment), then STEP1 会員登録開始."""
    await page.goto(link)
    await expect(page.get_by_role("heading", name="新規会員登録")).to_be_visible()
    await page.get_by_role("button", name="会員登録開始").click()
    await expect(page.get_by_role("heading", name="規約への同意")).to_be_visible()


async def open_documents(page: Page) -> None:
    for link in await page.locator(".document-link").all():
        async with page.context.expect_page() as opened:
            await link.click()
        popup = await opened.value
        await popup.wait_for_load_state()
        await popup.close()


async def agree_and_enter_gateway(page: Page, gateway_id: str, pcs: str) -> None:
    await open_documents(page)
    await page.get_by_label("上記について確認したので、同意します。").check()
    await page.get_by_role("button", name="次へ").click()
    await page.get_by_label("ゲートウェイID").fill(gateway_id)
    await page.get_by_label("パワーコンディショナ製造番号").fill(pcs)
    await page.get_by_role("button", name="次へ").click()
    await expect(page.get_by_role("heading", name="お客様情報")).to_be_visible()


async def fill_customer(page: Page, *, prefecture: bool = False) -> None:
    """STEP4 with full-width input where the guide asks for half-width (accepted)."""
    await page.get_by_label("氏名").fill(NAME)
    await page.get_by_label("フリガナ").fill("えがお　たろう")
    await page.locator("#postal_code").fill("５３０－０００１")
    if prefecture:
        await page.locator("#prefecture").select_option("大阪府")
    await page.locator("#address").fill("大阪市北区梅田１ー２ー３")
    await page.locator("#phone1").fill("０６")
    await page.locator("#phone2").fill("1234")
    await page.locator("#phone3").fill("5678")
    await page.locator("#password").fill(WEB_PASSWORD)
    await page.locator("#password_confirmation").fill(WEB_PASSWORD)
