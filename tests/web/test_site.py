"""The monitoring site's 解約 (with its confirmation step), and the development inbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect
from temporalio.testing import WorkflowEnvironment

from devtools.mailsink import MailSink
from tests.factories import add_customer
from tests.web.conftest import WebStack, _serve
from tests.web.journey import apply_for, link_from_mail, log_in, request_link

Shot = Callable[[Page, str], Any]


async def test_cancel_asks_first(web: WebStack, shot: Shot) -> None:
    customer = add_customer(web.engine, second_eligible=True)
    page = await web.phone()
    await log_in(page, customer)
    await apply_for(page, customer.eligible_gateway)
    await page.get_by_role("link", name="メインメニューに戻る").click()
    await apply_for(page, customer.other_gateway)
    await page.goto("/site/circle/gateways")
    row = page.locator(".gateway", has_text=customer.other_gateway)
    await row.get_by_role("link", name="解約").click()
    await expect(page.get_by_role("heading", name="解約の確認")).to_be_visible()
    await shot(page, "18-cancel-confirm")
    await page.get_by_role("link", name="解約しない").click()
    await expect(row).to_contain_text("申込済み")  # nothing happened
    await row.get_by_role("link", name="解約").click()
    await page.get_by_role("button", name="解約する").click()
    await expect(page.get_by_role("status")).to_contain_text("解約が完了しました")
    await expect(row).to_contain_text("解約済み")
    await expect(page.locator(".gateway", has_text=customer.eligible_gateway)).to_contain_text(
        "申込済み"
    )
    await shot(page, "19-cancelled")
    await page.reload()  # the notice was shown once; reloading cancels nothing more
    await expect(page.get_by_role("status")).to_have_count(0)
    await page.context.close()


async def test_dev_inbox_lists_mails_with_clickable_links(
    dev_env: WorkflowEnvironment,
    sqlite_url: str,
    mail_sink: MailSink,
    browser: Browser,
    tmp_path: Path,
    shot: Shot,
) -> None:
    async for web in _serve(dev_env, sqlite_url, mail_sink, browser, web_dev_mail_dir=tmp_path):
        page = await web.phone()
        email = "inbox@example.com"
        await request_link(page, email)
        link = await link_from_mail(web.sink, email)
        [mail] = [m for m in web.sink.handler.received if m.envelope_to == [email]]
        (tmp_path / "20260101-000000-00001.eml").write_bytes(mail.message.as_bytes())
        await page.goto("/dev/mail")
        await expect(page.get_by_role("heading", name="受信メール一覧（開発用）")).to_be_visible()
        await shot(page, "25-dev-inbox")
        await page.get_by_role("link", name=link).click()
        await expect(page.get_by_role("heading", name="新規会員登録")).to_be_visible()
        await page.context.close()
