"""Every field error beside its field, in the API's Japanese, with an error summary that
links to it; entered values kept, never the password. Walked with scripts off, so the
server-side paths (the pasted link, the STEP2 check, the prefecture fill) are the ones
tested."""

from __future__ import annotations

from playwright.async_api import Page, expect

from domain.errors import ErrorCode, message_for
from tests.factories import add_customer
from tests.web.conftest import WebStack
from tests.web.journey import (
    NAME,
    WEB_PASSWORD,
    apply_for,
    fill_customer,
    link_from_mail,
    log_in,
    request_link,
)


async def assert_errors(page: Page, expected: dict[str, ErrorCode]) -> None:
    """Each field's message beside it and linked from the summary; no other error."""
    summary = page.locator(".error-summary")
    await expect(summary).to_be_visible()
    for field, code in expected.items():
        message = message_for(code)
        await expect(page.locator(f"#{field}-error")).to_contain_text(message)
        await expect(summary.locator(f'a[href="#{field}"]')).to_have_text(message)
        assert await page.locator(f"#{field}").get_attribute("aria-invalid") == "true"
    assert await summary.locator("a").count() == len(expected)


async def test_every_field_error_without_scripts(web: WebStack) -> None:
    customer = add_customer(web.engine)
    setup = await web.phone()
    await log_in(setup, customer)
    await apply_for(setup, customer.eligible_gateway)
    await setup.context.close()

    page = await web.phone(javascript=False)
    await page.goto("/points/signup")
    await page.get_by_label("メールアドレス").fill("笑顔@example.com")
    await page.get_by_role("button", name="送信する").click()
    await assert_errors(page, {"email": ErrorCode.INVALID_EMAIL})
    assert await page.get_by_label("メールアドレス").input_value() == "笑顔@example.com"
    await request_link(page, customer.email)

    # Without scripts the fragment stays in the browser: the page asks for the link.
    link = await link_from_mail(web.sink, customer.email)
    await page.goto(link)
    await expect(page.get_by_text("スクリプト（JavaScript）が無効な場合")).to_be_visible()
    await page.get_by_label("メールに記載のURL").fill(link)
    await page.get_by_role("button", name="次へ").click()
    await page.get_by_role("button", name="会員登録開始").click()

    # STEP2: the server refuses the agreement until both documents were opened.
    box = page.get_by_label("上記について確認したので、同意します。")
    await box.check()
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(page, {"agree": ErrorCode.DOCUMENTS_NOT_PRESENTED})
    await page.get_by_role("button", name="次へ").click()  # unchecked
    await expect(page.locator("#agree-error")).to_contain_text("チェックを入れてください")
    for document in ("smile_e_point_terms", "smile_e_point_privacy"):
        await page.goto(f"/points/documents/{document}")
    await page.goto("/points/step2")
    await box.check()
    await page.get_by_role("button", name="次へ").click()

    # STEP3
    await page.get_by_label("ゲートウェイID").fill("GW-1")
    await page.get_by_label("パワーコンディショナ製造番号").fill("①②")
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(
        page,
        {"gateway_id": ErrorCode.INVALID_GATEWAY_ID, "pcs_serial": ErrorCode.INVALID_PCS_SERIAL},
    )
    assert await page.get_by_label("ゲートウェイID").input_value() == "GW-1"
    await page.get_by_label("ゲートウェイID").fill(customer.other_gateway)
    await page.get_by_label("パワーコンディショナ製造番号").fill(customer.eligible_pcs)
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(page, {"gateway_id": ErrorCode.GATEWAY_NOT_APPLIED})
    await page.get_by_label("ゲートウェイID").fill(customer.eligible_gateway)
    await page.get_by_role("button", name="次へ").click()

    # STEP4: every field wrong at once.
    await page.get_by_label("氏名").fill("株式会社えがお")
    await page.get_by_label("フリガナ").fill("egao")
    await page.locator("#postal_code").fill("53")
    await page.locator("#address").fill("梅田1丁目2番地3号")
    await page.get_by_label("お客様住所と異なる").check()
    await page.locator("#inst_address").fill("千代田\u2460")
    await page.locator("#phone1").fill("06")
    await page.locator("#phone2").fill("12")
    await page.locator("#password").fill("short")
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(
        page,
        {
            "name": ErrorCode.CORPORATE_NAME,
            "furigana": ErrorCode.INVALID_FURIGANA,
            "postal_code": ErrorCode.INVALID_POSTAL_CODE,
            "prefecture": ErrorCode.INVALID_PREFECTURE,
            "address": ErrorCode.ADDRESS_USE_HYPHENS,
            "inst_postal_code": ErrorCode.INVALID_POSTAL_CODE,
            "inst_prefecture": ErrorCode.INVALID_PREFECTURE,
            "inst_address": ErrorCode.UNSUPPORTED_CHARACTER,
            "phone1": ErrorCode.INVALID_PHONE,
            "password": ErrorCode.INVALID_PASSWORD,
        },
    )
    assert await page.get_by_label("氏名").input_value() == "株式会社えがお"
    assert await page.locator("#address").input_value() == "梅田1丁目2番地3号"
    assert await page.locator("#password").input_value() == ""
    assert "short" not in await page.content()

    # A postal code that does not exist, a prefecture that does not match it, and a
    # confirmation that differs.
    await fill_customer(page, prefecture=True)
    await page.locator("#postal_code").fill("000-0000")
    await page.locator("#inst_postal_code").fill("530-0001")
    await page.locator("#inst_prefecture").select_option("東京都")
    await page.locator("#inst_address").fill("梅田1-2-3")
    await page.locator("#password_confirmation").fill(WEB_PASSWORD + "x")
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(
        page,
        {
            "postal_code": ErrorCode.UNKNOWN_POSTAL_CODE,
            "inst_prefecture": ErrorCode.PREFECTURE_MISMATCH,
            "password_confirmation": ErrorCode.PASSWORD_MISMATCH,
        },
    )

    # A postal code that does not exist, with the prefecture left empty: that is the
    # error shown (not the empty prefecture).
    await fill_customer(page)
    await page.locator("#postal_code").fill("000-0000")
    await page.locator("#prefecture").select_option("")
    await page.get_by_label("お客様住所と同じ").check()
    await page.get_by_role("button", name="次へ").click()
    await assert_errors(page, {"postal_code": ErrorCode.UNKNOWN_POSTAL_CODE})

    # Fixed: the prefecture left empty is filled from the postal code on submit.
    await fill_customer(page)
    await page.locator("#prefecture").select_option("")
    await page.get_by_label("お客様住所と同じ").check()
    await page.get_by_role("button", name="次へ").click()
    table = page.locator(".check-table")
    await expect(table).to_contain_text(NAME)
    await expect(table).to_contain_text("大阪府")
    await page.context.close()
