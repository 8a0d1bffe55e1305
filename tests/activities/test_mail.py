"""Mail rendering (pure) and sending (a real SMTP server: aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import socket
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mail import MailActivities, MailRenderer, SmtpSettings, message_id_for
from config import Settings
from devtools.mailsink import MailSink
from domain.enrollment import AwaitedStep
from domain.mail import BRAND_OF, MailKind, MailRequest
from store.tables import OutboxMail
from tests.factories import add_customer
from worker import mail_renderer, smtp_settings

RENDERER = mail_renderer(Settings())
COMPLETE = {
    "applied_at": "2022/06/20 19:25",
    "gateway_id": "GW0000000001",
    "pcs_serial": "PCS00001",
}


def activities(engine: Engine, sink: MailSink) -> MailActivities:
    smtp = SmtpSettings(
        host="127.0.0.1",
        port=sink.port,
        sender="noreply@test.example",
        domain="test.example",
        timeout=5,
    )
    return MailActivities(engine, smtp, RENDERER)


GATEWAY = {"gateway_id": "GW0000000001", "new_gateway_id": "GW0000000002"}
REVISED = {"version": "2026-04-01", "url": "https://example.invalid/terms"}


@pytest.mark.parametrize(
    ("kind", "context", "subject_has"),
    [
        (MailKind.INVITATION, {}, "お申込みのご案内"),
        (MailKind.APPLICATION_COMPLETE, COMPLETE, "お申込み完了のお知らせ"),
        (MailKind.APPLICATION_CANCELLED, {**COMPLETE, "cancelled_at": "2022/07/01 09:00"}, "解約"),
        (MailKind.REMINDER, {"awaited": "consent", "reminder_number": "1"}, "再送"),
        (MailKind.REMINDER, {"awaited": "application", "reminder_number": "2"}, "ゲートウェイ"),
        (MailKind.REMINDER, {"awaited": "points_signup", "reminder_number": "3"}, "スマイルe"),
        (MailKind.GATEWAY_CHANGED, {**GATEWAY, "change": "units_changed"}, "お申込み内容"),
        (MailKind.GATEWAY_CHANGED, {**GATEWAY, "change": "exchanged"}, "お申込み内容"),
        (MailKind.GATEWAY_CHANGED, {**GATEWAY, "change": "removed"}, "お申込み内容"),
        (MailKind.TERMS_REVISED, {**REVISED, "audience": "consent"}, "会員規約改定"),
        (MailKind.TERMS_REVISED, {**REVISED, "audience": "member"}, "会員規約改定"),
    ],
)
def test_every_kind_renders(kind: MailKind, context: dict[str, str], subject_has: str) -> None:
    mail = RENDERER.render(kind, {"name": "髙橋 太郎", **context})
    assert subject_has in mail.subject and "\n" not in mail.subject
    assert "髙橋 太郎 様" in mail.text and "髙橋 太郎 様" in mail.html
    assert "お問い合わせ" in mail.text


@pytest.mark.parametrize("awaited", [*AwaitedStep, "Consent", ""])
def test_reminders_branch_on_the_enum(awaited: str) -> None:
    """Every awaited step has its own text; any other value fails the mail loudly
    (before, an unknown value silently got the points-signup text)."""
    context = {"name": "x", "awaited": awaited, "reminder_number": "1"}
    if awaited not in set(AwaitedStep):
        with pytest.raises(jinja2.UndefinedError):
            RENDERER.render(MailKind.REMINDER, context)
        return
    mail = RENDERER.render(MailKind.REMINDER, context)
    others = [RENDERER.render(MailKind.REMINDER, {**context, "awaited": a}) for a in AwaitedStep]
    assert [m.subject for m in others].count(mail.subject) == 1


def test_completion_mail_follows_the_guide() -> None:
    mail = RENDERER.render(MailKind.APPLICATION_COMPLETE, {"name": "笑顔 太郎", **COMPLETE})
    assert "申込完了日時： 2022/06/20 19:25" in mail.text
    assert "ゲートウェイID： GW0000000001" in mail.text
    assert "パワーコンディショナ製造番号： PCS00001" in mail.text
    assert Settings().points_signup_url in mail.text


def test_missing_value_fails_instead_of_mailing_a_blank() -> None:
    with pytest.raises(jinja2.UndefinedError):
        RENDERER.render(MailKind.APPLICATION_COMPLETE, {"name": "x", "gateway_id": "GW"})


def test_html_is_escaped() -> None:
    mail = RENDERER.render(MailKind.INVITATION, {"name": "<script>x</script>"})
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html


async def test_sends_utf8_with_deterministic_message_id(
    sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    customer = add_customer(sqlite_engine, name="髙橋 ①ｱｲｳ")  # ISO-2022-JP cannot carry these
    req = MailRequest(
        key="k-utf8",
        kind=MailKind.APPLICATION_COMPLETE,
        account_id=customer.account_id,
        context=COMPLETE,
    )
    receipt = await ActivityEnvironment().run(activities(sqlite_engine, mail_sink).send_mail, req)
    # The activity returns after the server's 250, which the sink gives once it holds the mail.
    [mail] = mail_sink.received
    assert mail.envelope_to == [customer.email]
    assert "髙橋 ①ｱｲｳ 様" in mail.text
    assert "お申込み完了のお知らせ" in mail.subject
    assert mail.message["Message-ID"] == message_id_for("k-utf8", "test.example")
    assert receipt.message_id == mail.message["Message-ID"]
    assert isinstance(mail.message, EmailMessage)
    plain = mail.message.get_body(("plain",))
    assert plain is not None and plain.get_content_charset() == "utf-8"


async def test_a_retried_mail_is_sent_once(sqlite_engine: Engine, mail_sink: MailSink) -> None:
    customer = add_customer(sqlite_engine)
    mail = activities(sqlite_engine, mail_sink)
    req = MailRequest(key="k-once", kind=MailKind.INVITATION, account_id=customer.account_id)
    first = await ActivityEnvironment().run(mail.send_mail, req)
    second = await ActivityEnvironment().run(mail.send_mail, req)
    assert (first.already_sent, second.already_sent) == (False, True)
    assert len(mail_sink.received) == 1  # both attempts have returned: nothing is in flight
    with Session(sqlite_engine) as session:
        row = session.get(OutboxMail, "k-once")
        assert row is not None and (row.status, row.attempts) == ("sent", 1)


async def test_permanent_refusal_is_not_retried(sqlite_engine: Engine, mail_sink: MailSink) -> None:
    customer = add_customer(sqlite_engine)
    mail_sink.handler.scripted_replies.append("550 5.1.1 mailbox unavailable")
    req = MailRequest(key="k-550", kind=MailKind.INVITATION, account_id=customer.account_id)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activities(sqlite_engine, mail_sink).send_mail, req)
    assert (err.value.type, err.value.non_retryable) == ("mail_rejected", True)
    with Session(sqlite_engine) as session:
        row = session.get(OutboxMail, "k-550")
        assert row is not None and row.status == "failed"


async def test_temporary_refusal_is_retryable(sqlite_engine: Engine, mail_sink: MailSink) -> None:
    customer = add_customer(sqlite_engine)
    mail_sink.handler.scripted_replies.append("451 4.3.0 try again later")
    mail = activities(sqlite_engine, mail_sink)
    req = MailRequest(key="k-451", kind=MailKind.INVITATION, account_id=customer.account_id)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(mail.send_mail, req)
    assert (err.value.type, err.value.non_retryable) == ("mail_deferred", False)
    await ActivityEnvironment().run(mail.send_mail, req)  # the retry
    assert len(mail_sink.received) == 1


async def test_unreachable_server_is_retryable(sqlite_engine: Engine) -> None:
    customer = add_customer(sqlite_engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    smtp = SmtpSettings(
        host="127.0.0.1",
        port=closed_port,
        sender="n@test.example",
        domain="test.example",
        timeout=2,
    )
    mail = MailActivities(sqlite_engine, smtp, RENDERER)
    req = MailRequest(key="k-down", kind=MailKind.INVITATION, account_id=customer.account_id)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(mail.send_mail, req)
    assert (err.value.type, err.value.non_retryable) == ("mail_unavailable", False)


def test_sink_binds_ipv4_loopback(mail_sink: MailSink) -> None:
    with socket.create_connection(("127.0.0.1", mail_sink.port), timeout=2) as conn:
        assert conn.recv(3) == b"220"


def test_renderer_uses_strict_undefined_everywhere() -> None:
    assert isinstance(MailRenderer({}), MailRenderer)
    with pytest.raises(jinja2.UndefinedError):
        MailRenderer({}).render(MailKind.INVITATION, {"name": "x"})


CIRCLE_FROM = "遠隔モニタリングサービス <noreply@eco-katsu.example>"
POINTS_FROM = "株式会社NTTスマイルエナジー <noreply_cr@nttse.com>"
POINTS_KINDS = {
    MailKind.SIGNUP_LINK,
    MailKind.SIGNUP_ALREADY_MEMBER,
    MailKind.SIGNUP_EXPIRED,
    MailKind.SIGNUP_REMINDER,
    MailKind.SIGNUP_COMPLETE,
    MailKind.HOLDER_CONFIRMED,
    MailKind.HOLDER_DECLINED,
    MailKind.HOLDER_CONFIRMATION_EXPIRED,
    MailKind.MEMBER_EMAIL_CHANGE_LINK,
    MailKind.MEMBER_EMAIL_CHANGE_TAKEN,
    MailKind.MEMBER_EMAIL_CHANGED,
    MailKind.MEMBER_EMAIL_CHANGED_NOTICE,
    MailKind.MEMBER_CANCELLED,
    MailKind.MEMBER_CIRCLE_CANCELLED,
    MailKind.SIGNUP_CANCELLED,
}


async def test_each_kind_carries_its_brands_sender(
    sqlite_engine: Engine, mail_sink: MailSink, tmp_path: Path
) -> None:
    """Through the real SMTP sink, with the worker's settings (defaults): the points mails
    come from NTT Smile Energy as the guide shows, the circle's from the monitoring
    service. Trivial templates, so that every kind is sent without its own context."""
    for kind in MailKind:
        for suffix in ("subject.txt", "txt", "html"):
            (tmp_path / "mail").mkdir(exist_ok=True)
            (tmp_path / "mail" / f"{kind.value}.{suffix}").write_text(kind.value)
    customer = add_customer(sqlite_engine)
    smtp = dataclasses.replace(smtp_settings(Settings()), port=mail_sink.port, timeout=5)
    mail = MailActivities(sqlite_engine, smtp, MailRenderer({}, templates=tmp_path))
    for kind in MailKind:
        req = MailRequest(key=f"brand-{kind.value}", kind=kind, account_id=customer.account_id)
        await ActivityEnvironment().run(mail.send_mail, req)
    senders = {m.subject: str(m.message["From"]) for m in mail_sink.received}
    assert senders == {
        kind.value: POINTS_FROM if kind in POINTS_KINDS else CIRCLE_FROM for kind in MailKind
    }


def test_points_sender_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOKATSU_POINTS_MAIL_FROM", "スマイルeポイント <points@example.jp>")
    smtp = smtp_settings(Settings())
    assert smtp.sender_for(MailKind.SIGNUP_LINK) == "スマイルeポイント <points@example.jp>"
    assert smtp.sender_for(MailKind.INVITATION) == Settings().mail_from


def test_every_kind_has_a_brand() -> None:
    assert set(BRAND_OF) == set(MailKind)


def test_gateway_and_terms_mails_say_what_happened() -> None:
    """The guide's wording for a unit out of use; the exchange names the new gateway; a
    waiting customer is asked to agree again, a member only told."""
    units = RENDERER.render(
        MailKind.GATEWAY_CHANGED, {"name": "x", **GATEWAY, "change": "units_changed"}
    )
    assert "故障交換" in units.text and "蓄電池ユニットを使用せず" in units.text
    exchanged = RENDERER.render(
        MailKind.GATEWAY_CHANGED, {"name": "x", **GATEWAY, "change": "exchanged"}
    )
    assert "GW0000000002" in exchanged.text and "改めてお申し込み" in exchanged.text
    consent = RENDERER.render(
        MailKind.TERMS_REVISED, {"name": "x", **REVISED, "audience": "consent"}
    )
    member = RENDERER.render(MailKind.TERMS_REVISED, {"name": "x", **REVISED, "audience": "member"})
    assert "「同意する」" in consent.text and "「同意する」" not in member.text
    assert "2026-04-01" in member.text and REVISED["url"] in member.html
