"""The local SMTP sink (``cli.py mailsink``): what it prints and keeps, over real SMTP."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

from activities.mail import build_message
from config import Settings
from devtools.mailsink import MailSink, ReceivedMail, summary
from domain.mail import MailKind
from worker import mail_renderer

RENDERER = mail_renderer(Settings())


def a_mail(link: str) -> bytes:
    """One of our mails as the worker sends it: a Japanese subject, a link in the text."""
    rendered = RENDERER.render(
        MailKind.SIGNUP_LINK,
        {
            "name": "髙橋 太郎",
            "link_url": link,
            "link_ttl": "24時間",
            "expires_at": "2026/11/28 10:00",
        },
    )
    return build_message(
        rendered, "noreply@test.example", "髙橋 太郎", "taro@example.com", "<m1@test.example>"
    ).data


async def send(sink: MailSink, data: bytes) -> None:
    await aiosmtplib.send(
        data,
        sender="noreply@test.example",
        recipients=["taro@example.com"],
        hostname="127.0.0.1",
        port=sink.port,
    )


def test_the_summary_reads_what_the_full_parse_reads() -> None:
    data = a_mail("https://example.invalid/points/signup#t=abc")
    parsed = ReceivedMail(envelope_to=[], content=data)
    assert summary(data) == (parsed.subject, parsed.links)
    assert "https://example.invalid/points/signup#t=abc" in parsed.links


async def test_the_cli_sink_prints_one_line_keeps_the_file_and_nothing_in_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = MailSink(directory=tmp_path, echo=True, keep=False).start()
    try:
        data = a_mail("https://example.invalid/points/signup#t=xyz")
        await send(sink, data)
    finally:
        sink.stop()
    subject = ReceivedMail(envelope_to=[], content=data).subject
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [
        f"mail to taro@example.com: {subject}",
        "    link: https://example.invalid/points/signup#t=xyz",
    ]
    assert printed[2:] == [f"    link: {link}" for link in summary(data)[1][1:]]
    [kept] = list(tmp_path.glob("*.eml"))
    assert kept.read_bytes() == data
    assert sink.received == [] and sink.handler.count == 1


async def test_the_tests_sink_keeps_each_mail_parsed_on_first_use(mail_sink: MailSink) -> None:
    data = a_mail("https://example.invalid/x")
    await send(mail_sink, data)
    [mail] = mail_sink.received
    assert "message" not in vars(mail)  # not parsed while the relay answered
    assert mail.envelope_to == ["taro@example.com"]
    assert mail.message["Message-ID"] == "<m1@test.example>"
    assert mail.links[0] == "https://example.invalid/x"
