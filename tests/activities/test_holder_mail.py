"""The mails of "knowing the two IDs is not enough": each renders, in the guide's tone."""

from __future__ import annotations

import jinja2
import pytest

from config import Settings
from domain.holder import mask_email
from domain.mail import MailKind
from worker import mail_renderer

RENDERER = mail_renderer(Settings())
ASKED = {
    "gateway_id": "GW0000000001",
    "requested_at": "2026/11/27 12:00",
    "expires_at": "2026/11/28 12:00",
    "confirmation_url": "https://regist.example/points-confirmation#TOKEN",
    "masked_email": "t***@example.com",
}
NOTICE = {
    "gateway_id": "GW0000000001",
    "registered_at": "2026/11/27 12:00",
    "masked_email": "t***@example.com",
}


@pytest.mark.parametrize(
    ("kind", "context", "subject_has", "text_has"),
    [
        (
            MailKind.HOLDER_CONFIRMATION,
            ASKED,
            "確認のお願い",
            "https://regist.example/points-confirmation#TOKEN",
        ),
        (MailKind.POINTS_REGISTERED_NOTICE, NOTICE, "会員登録のお知らせ", "お心当たりのない場合"),
    ],
)
def test_mails_to_the_circle_account(
    kind: MailKind, context: dict[str, str], subject_has: str, text_has: str
) -> None:
    mail = RENDERER.render(kind, {"name": "髙橋 太郎", **context})
    assert subject_has in mail.subject and "\n" not in mail.subject
    assert "髙橋 太郎 様" in mail.text and "髙橋 太郎 様" in mail.html
    for value in (*context.values(), text_has):
        assert value in mail.text and value in mail.html
    assert "お問い合わせ" in mail.text


@pytest.mark.parametrize(
    ("kind", "subject_has"),
    [
        (MailKind.HOLDER_CONFIRMED, "承認のお知らせ"),
        (MailKind.HOLDER_DECLINED, "手続き終了のお知らせ"),
        (MailKind.HOLDER_CONFIRMATION_EXPIRED, "有効期限が切れました"),
    ],
)
def test_mails_to_the_signup_address(kind: MailKind, subject_has: str) -> None:
    mail = RENDERER.render(kind, {"name": ""})
    assert subject_has in mail.subject and subject_has in mail.html
    assert "スマイルeポイント" in mail.text and "お問い合わせ" in mail.text


def test_a_missing_link_fails_instead_of_mailing_a_blank() -> None:
    with pytest.raises(jinja2.UndefinedError):
        RENDERER.render(MailKind.HOLDER_CONFIRMATION, {"name": "x"})


@pytest.mark.parametrize(
    ("email", "masked"),
    [("taro@example.com", "t***@example.com"), ("a@b.jp", "a***@b.jp")],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask_email(email) == masked
