"""The whole journey in the browser, at phone width, against the real stack: from ログイン
to 「マイページへ」, following the link out of the delivered mail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.async_api import Page, expect
from sqlmodel import Session, select

from domain.ids import signup_workflow_id
from store.tables import PointsMember
from tests.factories import add_customer
from tests.waiting import eventually
from tests.web.conftest import WebStack
from tests.web.journey import (
    NAME,
    WEB_PASSWORD,
    fill_customer,
    link_from_mail,
    log_in,
    no_horizontal_scroll,
    open_documents,
)

Shot = Callable[[Page, str], Any]


async def screen(page: Page, shot: Shot, name: str) -> None:
    """Every screen: lang="ja", no horizontal scroll at 360 px, and its picture."""
    assert await page.get_attribute("html", "lang") == "ja"
    await no_horizontal_scroll(page)
    await shot(page, name)


async def test_login_to_my_page_in_one_browser(web: WebStack, shot: Shot) -> None:
    customer = add_customer(web.engine)
    page = await web.phone()

    # 管理・登録サイト (pages 4–8)
    await page.goto("/site/login")
    await screen(page, shot, "01-login")
    await page.get_by_label("ユーザID").fill(customer.email)
    await page.get_by_label("パスワード").fill("wrong-password")
    await page.get_by_role("button", name="ログイン").click()
    summary = page.locator(".error-summary")
    await expect(summary).to_contain_text(
        "ユーザID（メールアドレス）またはパスワードが正しくありません。"
    )
    assert await page.get_by_label("ユーザID").input_value() == customer.email
    assert await page.get_by_label("パスワード").input_value() == ""  # never kept
    await screen(page, shot, "02-login-error")
    await log_in(page, customer)
    await expect(page.get_by_text(f"{customer.name} 様")).to_be_visible()
    await screen(page, shot, "03-menu")

    await page.get_by_role("link", name="みんなでつくるエコ活サークル").click()
    await expect(page.get_by_role("heading", name="申込条件と会員規約")).to_be_visible()
    await expect(page.get_by_role("button", name="同意しない")).to_be_visible()
    await screen(page, shot, "04-terms")
    await page.get_by_role("button", name="同意する").click()

    await expect(page.get_by_role("heading", name="申込状態の照会・申込・解約")).to_be_visible()
    other = page.locator(".gateway", has_text=customer.other_gateway)
    await expect(other).to_contain_text("対象外")
    await expect(other).to_contain_text("蓄電池ユニットをご使用中でないため")
    await screen(page, shot, "05-gateways")
    await page.get_by_role("link", name=customer.eligible_gateway, exact=True).click()
    await screen(page, shot, "06-apply")
    await page.get_by_role("button", name="申込確定").click()

    await expect(page.get_by_role("heading", name="申込完了")).to_be_visible()
    await expect(page.locator("#gateway-id")).to_have_text(customer.eligible_gateway)
    await expect(page.locator("#pcs-serial")).to_have_text(customer.eligible_pcs)
    await expect(page.get_by_text("申込完了日時")).to_be_visible()
    await expect(page.get_by_role("link", name="メインメニューに戻る")).to_be_visible()
    await screen(page, shot, "07-complete")
    # The browser's back button shows the gateway page again, fresh (no-store): applied,
    # nothing submitted again.
    await page.go_back()
    await expect(page.get_by_text("このゲートウェイは申込済みです。")).to_be_visible()
    await expect(page.get_by_role("button", name="申込確定")).to_have_count(0)
    await page.go_forward()
    await expect(page.get_by_role("heading", name="申込完了")).to_be_visible()

    # スマイルeポイント 登録受付サイト (pages 9–16), reached from the completion screen
    await page.get_by_role("link", name="「スマイルeポイント」登録受付サイトへ移動").click()
    await screen(page, shot, "08-signup")
    await page.get_by_label("メールアドレス").fill(customer.email.upper().replace("@", "＠"))
    await page.get_by_role("button", name="送信する").click()
    await expect(page.get_by_role("heading", name="会員登録用メール送信完了")).to_be_visible()
    await screen(page, shot, "09-sent")

    link = await link_from_mail(web.sink, customer.email)
    assert link.startswith(f"{web.base}/points/registration#")
    await page.goto(link)  # the script posts the fragment, the server redirects
    await expect(page.get_by_role("heading", name="新規会員登録")).to_be_visible()
    assert "#" not in page.url and link.split("#")[1] not in page.url
    await expect(page.locator(".progress [aria-current=step]")).to_have_text("現在：STEP1")
    await screen(page, shot, "10-step1")
    await page.get_by_role("button", name="会員登録開始").click()

    await expect(page.get_by_role("heading", name="規約への同意")).to_be_visible()
    box = page.get_by_label("上記について確認したので、同意します。")
    await expect(box).to_be_disabled()  # until both documents were opened
    await expect(page.get_by_role("button", name="次へ")).to_be_disabled()
    await screen(page, shot, "11-step2")
    async with page.context.expect_page() as opened:
        await page.locator(".document-link").first.click()
    document = await opened.value
    await document.wait_for_load_state()
    await expect(document.locator(".document")).to_be_visible()
    await screen(document, shot, "12-step2-document")
    await document.close()
    await expect(box).to_be_disabled()  # one of two
    await open_documents(page)
    await expect(box).to_be_enabled()
    await box.check()
    await page.get_by_role("button", name="次へ").click()

    await expect(page.get_by_role("heading", name="関連情報")).to_be_visible()
    await screen(page, shot, "13-step3")
    # Full-width, as a phone keyboard may type it: accepted as the API accepts it.
    full_width = customer.eligible_gateway.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    await page.get_by_label("ゲートウェイID").fill(full_width)
    await page.get_by_label("パワーコンディショナ製造番号").fill(customer.eligible_pcs.lower())
    await page.get_by_role("button", name="次へ").click()

    await expect(page.get_by_role("heading", name="お客様情報")).to_be_visible()
    await screen(page, shot, "14-step4")
    await fill_customer(page)
    # static/postal.js fills the prefecture as soon as the postal code is complete.
    await expect(page.locator("#prefecture")).to_have_value("大阪府")
    await page.get_by_label("お客様住所と異なる").check()
    await page.locator("#inst_postal_code").fill("100-0001")
    await page.locator("#inst_address").fill("千代田1-1")
    await page.get_by_role("button", name="次へ").click()

    await expect(page.get_by_role("heading", name="登録内容の確認")).to_be_visible()
    table = page.locator(".check-table")
    await expect(table).to_contain_text(NAME)
    await expect(table).to_contain_text("エガオ　タロウ")
    await expect(table).to_contain_text("530-0001")
    await expect(table).to_contain_text("大阪府")  # filled from the postal code
    await expect(table).to_contain_text("東京都")
    await expect(table).to_contain_text(customer.eligible_gateway)
    await expect(table).to_contain_text(customer.email)
    await expect(table).to_contain_text("06-1234-5678")
    await expect(page.get_by_text("スマイルeポイント サービス利用規約：同意済み")).to_be_visible()
    await expect(page.get_by_text("個人情報の取扱について：同意済み")).to_be_visible()
    assert WEB_PASSWORD not in await page.content()
    await screen(page, shot, "15-step5")

    # 「< 戻る」: the entered values come back (never the password); change one, return.
    await page.get_by_role("link", name="< 戻る").click()
    await expect(page.get_by_role("heading", name="お客様情報")).to_be_visible()
    assert await page.get_by_label("氏名").input_value() == NAME
    assert await page.locator("#inst_prefecture").input_value() == "東京都"
    assert await page.locator("#password").input_value() == ""
    await page.get_by_label("お客様住所と同じ").check()
    await page.locator("#password").fill(WEB_PASSWORD)
    await page.locator("#password_confirmation").fill(WEB_PASSWORD)
    await page.get_by_role("button", name="次へ").click()
    await expect(page.get_by_role("heading", name="登録内容の確認")).to_be_visible()
    await expect(table).not_to_contain_text("東京都")

    # 登録する twice (the same form sent twice at once, as a double click without the
    # script does): both answers are STEP6, and there is one member.
    finals = await page.evaluate(
        """async () => {
            const form = document.getElementById('register-form');
            const body = new URLSearchParams(new FormData(form));
            const send = () =>
                fetch(form.action, {method: 'POST', body, credentials: 'same-origin'});
            const answers = await Promise.all([send(), send()]);
            return answers.map(a => [a.status, new URL(a.url).pathname]);
        }"""
    )
    assert finals == [[200, "/points/step6"], [200, "/points/step6"]]
    await page.goto("/points/step6")
    await expect(page.get_by_role("heading", name="登録完了")).to_be_visible()
    await expect(page.locator("#member-name")).to_have_text(NAME)
    await expect(page.get_by_role("link", name="マイページへ")).to_have_attribute(
        "href", web.settings.points_login_url
    )
    await screen(page, shot, "16-step6")
    with Session(web.engine) as session:
        members = session.exec(select(PointsMember)).all()
        signup_id = members[0].signup_id if members else ""
    assert len(members) == 1
    # One 登録する update in the signup's history: the second submission carried the same
    # idempotency key and attached to the first.
    history = await web.env.client.get_workflow_handle(
        signup_workflow_id(signup_id)
    ).fetch_history()
    registers = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == "register"
    ]
    assert len(registers) == 1

    # The mailed link, opened again, says the registration is done.
    await page.goto(link)
    await expect(page.get_by_role("alert")).to_have_text(
        "会員登録は完了しています。マイページからログインしてください。"
    )
    await screen(page, shot, "17-link-registered")

    # The journey is enrolled: the circle page lists the gateway as applied.
    await page.goto("/site/circle/gateways")
    await expect(page.locator(".gateway", has_text=customer.eligible_gateway)).to_contain_text(
        "申込済み"
    )
    await page.get_by_role("button", name="ログアウト").click()
    await expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    await page.goto("/site/menu")
    await expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    await eventually(
        lambda: [m for m in web.sink.handler.received if "会員登録完了" in m.subject],
        what="the registration mail",
    )
    await page.context.close()
