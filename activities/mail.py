"""Rendering and sending mail.

Rendering is a pure function of (kind, context) over one jinja2 environment with autoescape
and ``StrictUndefined``, so a missing value fails loudly instead of mailing a blank.

Sending is idempotent by the mail's key: the outbox row is claimed before the SMTP
conversation and marked ``sent`` after it, and a ``sent`` row is never sent again. The
Message-ID is derived from the key, so in the one window that cannot be closed (the
connection drops after DATA was accepted, before we record it) the retry carries the same
Message-ID and receiving systems can fold the two.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

import aiosmtplib
import jinja2
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from domain.enrollment import AwaitedStep
from domain.mail import Brand, MailKind, MailReceipt, MailRequest, brand_of
from store.tables import Account, MemberEmailChange, OutboxMail, PointSignup, PointsMember

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailRenderer:
    def __init__(self, base_context: dict[str, str], templates: Path = TEMPLATES) -> None:
        self._base = base_context
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        # Templates branch on enums, not on strings of their own (a renamed value fails).
        self._env.globals["AwaitedStep"] = AwaitedStep

    def render(self, kind: MailKind, context: dict[str, str]) -> RenderedMail:
        values = {**self._base, **context}
        subject = self._env.get_template(f"mail/{kind.value}.subject.txt").render(values)
        return RenderedMail(
            subject=" ".join(subject.split()),
            text=self._env.get_template(f"mail/{kind.value}.txt").render(values),
            html=self._env.get_template(f"mail/{kind.value}.html").render(values),
        )


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # the circle's (遠隔モニタリングサービス)
    domain: str
    username: str | None = None
    password: str | None = None
    start_tls: bool = False
    timeout: float = 30.0
    # NTT Smile Energy's, for the kinds ``domain.mail.BRAND_OF`` gives to the points brand.
    # The worker always sets it; None (tests of other things) falls back to ``sender``.
    points_sender: str | None = None

    def sender_for(self, kind: MailKind) -> str:
        if brand_of(kind) is Brand.POINTS and self.points_sender is not None:
            return self.points_sender
        return self.sender


def message_id_for(key: str, domain: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


@dataclass(frozen=True)
class OutgoingMail:
    """A mail as it goes on the wire: the envelope and the message's bytes (7-bit, CRLF)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


def build_message(
    mail: RenderedMail, sender: str, to_name: str, to_addr: str, message_id: str
) -> OutgoingMail:
    """multipart/alternative of the text and the HTML, UTF-8 throughout (ISO-2022-JP cannot
    carry 髙, ① or half-width kana), written out directly: ``email.policy.default``'s
    header objects and the generator's refolding cost ~5 ms of CPU per mail.

    Headers are RFC 2047 encoded-words (base64, each at most 75 characters, split between
    characters) on folded lines; the bodies are base64 in 76-character lines, so the mail
    is 7-bit and needs no 8BITMIME. ``ValueError`` for what can never be sent: CR or LF in
    a header value, or an address that is not ASCII (the relay is not asked for SMTPUTF8).
    """
    for value in (mail.subject, sender, to_name, to_addr, message_id):
        if "\r" in value or "\n" in value:
            raise ValueError("a mail header value may not contain CR or LF")
    from_name, from_addr = _sender(sender)
    boundary = "=_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32]
    head = "\r\n".join(
        (
            _unstructured("Subject", mail.subject),
            _mailbox("From", from_name, from_addr),
            _mailbox("To", f"{to_name} 様", to_addr),
            f"Message-ID: {message_id}",
            f"Date: {format_datetime(datetime.now(UTC))}",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative;",
            f' boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            "",
        )
    )
    html_head = "\r\n".join(
        (
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            "",
        )
    )
    data = b"".join(
        (
            head.encode("ascii"),
            _base64_body(mail.text),
            html_head.encode("ascii"),
            _base64_body(mail.html),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )
    return OutgoingMail(sender=from_addr, recipients=(to_addr,), data=data)


# An encoded-word "=?utf-8?b?...?=" holds 42 bytes of UTF-8 (56 base64 characters, 68 in
# all): with "Subject: " in front, the first line stays within 78 characters too.
_WORD_BYTES = 42
_LINE = 78


def _encoded_words(text: str) -> list[str]:
    """``text`` as encoded-words, split between characters, never inside one."""
    words: list[str] = []
    start = size = 0
    for i, ch in enumerate(text):
        n = 1 if ch < "\x80" else 2 if ch < "\u0800" else 3 if ch < "\U00010000" else 4
        if size + n > _WORD_BYTES:
            words.append(_word(text[start:i]))
            start, size = i, 0
        size += n
    words.append(_word(text[start:]))
    return words


def _word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode('ascii')}?="


def _plain(text: str) -> bool:
    """Printable ASCII that no reader could take for an encoded-word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def _unstructured(name: str, value: str) -> str:
    if _plain(value) and len(name) + 2 + len(value) <= _LINE:
        return f"{name}: {value}"
    # Whitespace between adjacent encoded-words is not part of the text (RFC 2047 6.2).
    return f"{name}: " + "\r\n ".join(_encoded_words(value))


def _mailbox(name: str, display_name: str, addr: str) -> str:
    addr.encode("ascii")  # UnicodeEncodeError (a ValueError): the relay takes ASCII only
    if not display_name or _plain(display_name):
        return f"{name}: {formataddr((display_name, addr))}"
    words = _encoded_words(display_name)
    indent = len(name) + 2 if len(words) == 1 else 1  # "To: " on the first line, " " after
    gap = " " if indent + len(words[-1]) + len(addr) + 3 <= _LINE else "\r\n "
    return f"{name}: " + "\r\n ".join(words) + f"{gap}<{addr}>"


@functools.lru_cache(maxsize=8)
def _sender(sender: str) -> tuple[str, str]:
    """("遠隔モニタリングサービス", "noreply@eco-katsu.example") from the setting."""
    display_name, addr = parseaddr(sender)
    return display_name, addr or sender.strip()


def _base64_body(text: str) -> bytes:
    """The text's lines ended by LF (as ``EmailMessage.set_content`` stores them), in
    base64 lines of 76 characters ended by CRLF."""
    data = text.encode()
    if b"\r" in data:
        data = b"\n".join(data.splitlines()) + b"\n"
    elif not data.endswith(b"\n"):
        data += b"\n"
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


class MailActivities:
    def __init__(self, engine: Engine, smtp: SmtpSettings, renderer: MailRenderer) -> None:
        self._engine = engine
        self._smtp = smtp
        self._renderer = renderer

    def _recipient(self, req: MailRequest) -> tuple[str, str]:
        """(name, address): an account's, or a signup's (whose name is its member's)."""
        with Session(self._engine) as session:
            if req.account_id is not None:
                account = session.get(Account, req.account_id)
                if account is not None:
                    return account.display_name, account.email
            elif req.signup_id is not None:
                signup = session.get(PointSignup, req.signup_id)
                if signup is not None:
                    member = session.exec(
                        select(PointsMember).where(PointsMember.signup_id == signup.id)
                    ).first()
                    return (member.name if member else ""), signup.email
            elif req.email_change_id is not None:
                change = session.get(MemberEmailChange, req.email_change_id)
                owner = session.get(PointsMember, change.member_id) if change else None
                if change is not None and owner is not None:
                    address = change.old_email if req.to_old_address else change.new_email
                    if address is not None:
                        return owner.name, address
            elif req.member_id is not None:
                holder = session.get(PointsMember, req.member_id)
                if holder is not None:
                    return holder.name, holder.email
        raise ApplicationError(
            "mail recipient not found", type="mail_recipient_unknown", non_retryable=True
        )

    def _claim(self, req: MailRequest, subject: str, message_id: str) -> bool:
        """Claim the outbox row for this key; False when the mail was already sent."""
        with Session(self._engine) as session:
            row = session.get(OutboxMail, req.key)
            if row is not None and row.status == "sent":
                return False
            if row is None:
                row = OutboxMail(
                    key=req.key,
                    kind=req.kind.value,
                    account_id=req.account_id,
                    signup_id=req.signup_id,
                    message_id=message_id,
                    subject=subject,
                    status="sending",
                )
            row.attempts += 1
            session.add(row)
            session.commit()
            return True

    def _finish(self, key: str, status: str, error: str | None = None) -> None:
        with Session(self._engine) as session:
            row = session.get(OutboxMail, key)
            if row is None:  # claimed moments ago; nothing to update if it vanished
                return
            row.status = status
            row.last_error = error
            if status == "sent":
                row.sent_at = datetime.now(UTC)
            session.add(row)
            session.commit()

    def _render(self, req: MailRequest, name: str, secret: dict[str, str]) -> RenderedMail:
        try:
            return self._renderer.render(req.kind, {"name": name, **req.context, **secret})
        except jinja2.TemplateError as exc:
            raise ApplicationError(
                f"mail template {req.kind.value} failed: {type(exc).__name__}",
                type="mail_template_error",
                non_retryable=True,
            ) from None

    @activity.defn
    async def send_mail(self, req: MailRequest) -> MailReceipt:
        return await self.deliver(req)

    async def deliver(self, req: MailRequest, secret: dict[str, str] | None = None) -> MailReceipt:
        """Render and send once per key. ``secret`` values (a link token) reach the mail
        but neither the workflow nor the outbox."""
        name, address = await asyncio.to_thread(self._recipient, req)
        mail = self._render(req, name, secret or {})
        message_id = message_id_for(req.key, self._smtp.domain)
        if not await asyncio.to_thread(self._claim, req, mail.subject, message_id):
            metrics.MAILS.labels(req.kind.value, "already_sent").inc()
            return MailReceipt(key=req.key, message_id=message_id, already_sent=True)
        try:
            sender = self._smtp.sender_for(req.kind)
            outgoing = build_message(mail, sender, name, address, message_id)
            await aiosmtplib.send(
                outgoing.data,
                sender=outgoing.sender,
                recipients=outgoing.recipients,
                hostname=self._smtp.host,
                port=self._smtp.port,
                username=self._smtp.username,
                password=self._smtp.password,
                start_tls=self._smtp.start_tls,
                timeout=self._smtp.timeout,
            )
        except ValueError as exc:
            # A header with CR/LF (ValueError) or an address the relay cannot take in
            # ASCII (UnicodeEncodeError, a ValueError): no retry will ever send it.
            await asyncio.to_thread(self._finish, req.key, "failed", type(exc).__name__)
            raise ApplicationError(
                f"mail cannot be sent ({type(exc).__name__})",
                type="mail_unsendable",
                non_retryable=True,
            ) from None
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            code = _smtp_code(exc)
            permanent = code is not None and 500 <= code < 600
            await asyncio.to_thread(
                self._finish, req.key, "failed" if permanent else "sending", f"SMTP {code}"
            )
            metrics.MAILS.labels(req.kind.value, "failed" if permanent else "deferred").inc()
            if permanent:
                raise ApplicationError(
                    f"SMTP refused the mail permanently ({code})",
                    type="mail_rejected",
                    non_retryable=True,
                ) from None
            raise ApplicationError(
                f"SMTP deferred the mail ({code})", type="mail_deferred"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection problems are temporary; the Temporal retry policy backs off.
            await asyncio.to_thread(self._finish, req.key, "sending", type(exc).__name__)
            metrics.MAILS.labels(req.kind.value, "deferred").inc()
            raise ApplicationError(
                f"SMTP unavailable ({type(exc).__name__})", type="mail_unavailable"
            ) from None
        await asyncio.to_thread(self._finish, req.key, "sent")
        metrics.MAILS.labels(req.kind.value, "sent").inc()
        return MailReceipt(key=req.key, message_id=message_id)


def _smtp_code(exc: Exception) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return max(codes) if codes else None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    return None
