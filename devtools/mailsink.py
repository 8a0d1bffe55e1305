"""A local SMTP sink (aiosmtpd): keeps every mail as an .eml file and prints a summary.

``python cli.py mailsink`` runs it. The tests use the same class,
so what the tests read is what a developer sees.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://[^\s<>\"）」]+")


@dataclass
class ReceivedMail:
    """One mail as the relay took it; parsed (``policy.default``) on first use only:
    that parse costs about 3.4 ms of CPU a mail here, on the cores the stack shares."""

    envelope_to: list[str]
    content: bytes

    @functools.cached_property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    @property
    def links(self) -> list[str]:
        return LINK.findall(self.text)


def summary(content: bytes) -> tuple[str, list[str]]:
    """The subject and the plain text's links, for the sink's one line per mail, read
    with the stdlib's ``compat32`` parser: a seventh of ``policy.default``'s CPU."""
    msg = message_from_bytes(content, policy=policy.compat32)
    subject = str(make_header(decode_header(msg.get("Subject", ""))))
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
                return subject, LINK.findall(text)
    return subject, []


@dataclass
class SinkHandler:
    directory: Path | None = None
    echo: bool = False
    # Every mail kept in memory as well, for the tests (``cli.py mailsink`` keeps the
    # files only: a long ``make run`` or a bench would grow without end).
    keep: bool = True
    received: list[ReceivedMail] = field(default_factory=list)
    count: int = 0
    # SMTP reply codes to give to the next DATA commands, for failure tests ("451 ...").
    scripted_replies: list[str] = field(default_factory=list)
    # A slow relay, for fault tests: it keeps the mail, then answers this many seconds late.
    reply_delay: float = 0.0
    # Called with each mail before the relay answers 250 (a reader as fast as can be).
    on_mail: Callable[[ReceivedMail], Awaitable[None]] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.scripted_replies:
            return self.scripted_replies.pop(0)
        mail = ReceivedMail(envelope_to=list(envelope.rcpt_tos), content=envelope.content)
        self.count += 1
        if self.keep:
            self.received.append(mail)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:05d}.eml"
            (self.directory / name).write_bytes(envelope.content)
        if self.echo:
            subject, links = summary(envelope.content)
            print(f"mail to {', '.join(mail.envelope_to)}: {subject}", flush=True)
            for link in links:
                print(f"    link: {link}", flush=True)
        if self.on_mail is not None:
            await self.on_mail(mail)
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return "250 Message accepted for delivery"


class MailSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd binds ::1 by default where IPv6 exists)."""

    def __init__(
        self, port: int = 0, directory: Path | None = None, echo: bool = False, keep: bool = True
    ) -> None:
        self.handler = SinkHandler(directory=directory, echo=echo, keep=keep)
        self._port = port or _free_port()
        self._controller = self._new_controller()

    def _new_controller(self) -> Controller:
        return Controller(self.handler, hostname="127.0.0.1", port=self._port)

    @property
    def port(self) -> int:
        return self._port

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop; ``start`` again brings the relay back on the same port (an outage)."""
        self._controller.stop()
        self._controller = self._new_controller()  # a stopped Controller cannot restart

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` mails have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.received)} of {count} mails arrived")
            await asyncio.sleep(0.05)
        return self.received


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
