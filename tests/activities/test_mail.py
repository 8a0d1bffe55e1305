"""Mail rendering (pure) and sending (a real SMTP server: aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mail import (
    MailActivities,
    MailRenderer,
    RenderedMail,
    SmtpSettings,
    build_message,
    message_id_for,
)
from config import Settings
from devtools.mailsink import MailSink
from domain.enrollment import AwaitedStep
from domain.mail import BRAND_OF, MailKind, MailRequest
from store.tables import Account, OutboxMail
from tests.factories import add_customer
from tests.statements import statements_of
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


LONG_SUBJECT = (
    "【みんなで作るエコ活サークル】" + "髙橋①ｱｲｳ𠮷😀 お申込み内容変更のお知らせ " * 12 + "end"
)


def read_back(data: bytes) -> EmailMessage:
    """As a receiving system reads it (and the sink does)."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize(
    "subject",
    [
        "【みんなで作るエコ活サークル お申込み完了のお知らせ】遠隔モニタリングサービス",
        LONG_SUBJECT,
        "An ASCII subject long enough to need folding, " * 6 + "=?utf-8?q?not_a_word?=",
        "Short ASCII subject",
    ],
    ids=["japanese", "very-long", "long-ascii", "ascii"],
)
def test_the_wire_mail_reads_back_as_built(subject: str) -> None:
    """What goes on the wire, read with ``email.policy.default``: the same subject, sender,
    recipient (name and address), Message-ID, date, text and HTML."""
    rendered = RENDERER.render(MailKind.APPLICATION_COMPLETE, {"name": "髙橋 ①ｱｲｳ", **COMPLETE})
    mail = dataclasses.replace(rendered, subject=subject)
    sender = Settings().mail_from
    message_id = message_id_for("k-wire", "eco-katsu.example")
    before = datetime.now(UTC).replace(microsecond=0)
    outgoing = build_message(mail, sender, "髙橋 ①ｱｲｳ", "taro@example.com", message_id)
    assert (outgoing.sender, outgoing.recipients) == (
        "noreply@eco-katsu.example",
        ("taro@example.com",),
    )
    message = read_back(outgoing.data)
    assert str(message["Subject"]) == subject
    assert str(message["From"]) == sender
    assert message["From"].addresses == (
        Address("遠隔モニタリングサービス", addr_spec="noreply@eco-katsu.example"),
    )
    assert message["To"].addresses == (Address("髙橋 ①ｱｲｳ 様", addr_spec="taro@example.com"),)
    assert message["Message-ID"] == message_id
    assert before <= parsedate_to_datetime(message["Date"]) <= datetime.now(UTC)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert plain.get_content() == mail.text and "髙橋 ①ｱｲｳ 様" in mail.text
    assert html.get_content() == mail.html and "髙橋 ①ｱｲｳ 様" in mail.html
    assert not message.defects and not plain.defects and not html.defects


@pytest.mark.parametrize("subject", [LONG_SUBJECT, "x" * 2000, "あ" * 700])
def test_every_line_stays_within_smtp_limits(subject: str) -> None:
    """7-bit, CRLF only, no line over 78 characters (SMTP's limit is 998 octets): long
    subjects are split into encoded-words of at most 75 characters, between characters."""
    mail = RenderedMail(subject=subject, text="あ" * 3000 + "\n", html="<p>" + "い" * 3000)
    outgoing = build_message(mail, "遠隔 <n@example.com>", "髙" * 100, "t@example.com", "<m@x>")
    data = outgoing.data
    assert data.isascii() and b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    words = [w for line in lines for w in line.split() if w.startswith(b"=?")]
    assert words and max(len(w) for w in words) <= 75
    message = read_back(data)
    assert str(message["Subject"]) == subject
    # A long name takes several encoded-words. RFC 2047 (6.2) drops the space between
    # them, as the compat32 decoder does; policy.default's phrase parser keeps one (it did
    # so for the long names EmailMessage folded too).
    assert message["To"].addresses[0].addr_spec == "t@example.com"
    raw_to = message_from_bytes(data, policy=policy.compat32)["To"]
    assert str(make_header(decode_header(raw_to))) == "髙" * 100 + " 様 <t@example.com>"
    assert [p.get_content() for p in message.iter_parts()] == [mail.text, mail.html]


@pytest.mark.parametrize("field", ["subject", "sender", "to_name", "to_addr", "message_id"])
@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
def test_a_header_with_a_line_break_is_refused(field: str, line_break: str) -> None:
    values = {
        "subject": "件名",
        "sender": "遠隔 <n@example.com>",
        "to_name": "髙橋",
        "to_addr": "t@example.com",
        "message_id": "<m@x>",
    }
    values[field] = values[field].replace("@", f"{line_break}Bcc: x@", 1) + f"{line_break}X: y"
    mail = RenderedMail(subject=values.pop("subject"), text="t", html="h")
    with pytest.raises(ValueError, match="CR or LF"):
        build_message(mail, **values)


@pytest.mark.parametrize(
    "name", ["髙橋\r\nBcc: victim@example.com", "Taro\nBcc: victim@example.com"]
)
async def test_a_header_injection_is_unsendable(
    sqlite_engine: Engine, mail_sink: MailSink, name: str
) -> None:
    """Never sent, never retried: the non-retryable ``mail_unsendable``."""
    customer = add_customer(sqlite_engine, name=name)
    req = MailRequest(key="k-crlf", kind=MailKind.INVITATION, account_id=customer.account_id)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activities(sqlite_engine, mail_sink).send_mail, req)
    assert (err.value.type, err.value.non_retryable) == ("mail_unsendable", True)
    assert mail_sink.received == []
    with Session(sqlite_engine) as session:
        row = session.get(OutboxMail, "k-crlf")
        assert row is not None and (row.status, row.last_error) == ("failed", "ValueError")


async def test_an_address_the_relay_cannot_take_is_unsendable(
    sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """The relay is not asked for SMTPUTF8: a non-ASCII address can never be sent."""
    customer = add_customer(sqlite_engine)
    with Session(sqlite_engine) as session:
        account = session.get(Account, customer.account_id)
        assert account is not None
        account.email = "idn@bücher.example"
        session.add(account)
        session.commit()
    req = MailRequest(key="k-idn", kind=MailKind.INVITATION, account_id=customer.account_id)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activities(sqlite_engine, mail_sink).send_mail, req)
    assert (err.value.type, err.value.non_retryable) == ("mail_unsendable", True)
    assert mail_sink.received == []


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


async def test_a_mail_is_recorded_sent_before_the_relay_says_goodbye(
    sqlite_engine: Engine, mail_sink: MailSink
) -> None:
    """A worker that dies after the relay took the mail sends it again (same Message-ID):
    that window is narrowed to the outbox's commit, which happens before QUIT."""
    customer = add_customer(sqlite_engine)
    at_quit: list[str | None] = []

    async def handle_quit(server: Any, session: Any, envelope: Any) -> str:
        with Session(sqlite_engine) as store:
            row = store.get(OutboxMail, "k-quit")
            at_quit.append(row.status if row else None)
        return "221 Bye"

    mail_sink.handler.handle_QUIT = handle_quit  # type: ignore[attr-defined]
    mail = activities(sqlite_engine, mail_sink)
    req = MailRequest(key="k-quit", kind=MailKind.INVITATION, account_id=customer.account_id)
    await ActivityEnvironment().run(mail.send_mail, req)
    assert at_quit == ["sent"]


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


async def test_the_outbox_takes_one_statement_a_step_on_both_stores(
    store_engine: Engine, mail_sink: MailSink
) -> None:
    """A journey mail reads its address, claims its outbox row and records the outcome
    with one statement each (no ORM session); a retry after a deferral counts one more
    attempt, and once sent the row is never claimed again."""
    customer = add_customer(store_engine)
    mail = activities(store_engine, mail_sink)
    req = MailRequest(key="k-outbox", kind=MailKind.INVITATION, account_id=customer.account_id)

    mail_sink.handler.scripted_replies.append("451 4.3.0 try again later")
    with statements_of(store_engine) as deferred:
        with pytest.raises(ApplicationError):
            await ActivityEnvironment().run(mail.send_mail, req)
    assert [s.split()[0] for s in deferred] == ["SELECT", "INSERT", "UPDATE"], deferred

    with statements_of(store_engine) as sent:
        first = await ActivityEnvironment().run(mail.send_mail, req)
    assert [s.split()[0] for s in sent] == ["SELECT", "INSERT", "UPDATE"], sent
    again = await ActivityEnvironment().run(mail.send_mail, req)
    assert (first.already_sent, again.already_sent) == (False, True)
    assert len(mail_sink.received) == 1

    with Session(store_engine) as session:
        row = session.get(OutboxMail, "k-outbox")
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
        assert row.sent_at is not None and row.created_at <= row.sent_at
        assert (row.kind, row.account_id) == ("invitation", customer.account_id)
