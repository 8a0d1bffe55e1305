"""Rendering and sending mail.

Rendering is a pure function of (kind, context) over one jinja2 environment with autoescape
and ``StrictUndefined``, so a missing value fails loudly instead of mailing a blank.

Sending is idempotent by the mail's key: the outbox row is claimed before the SMTP
conversation and marked ``sent`` as soon as the relay has taken the mail (before QUIT),
and a ``sent`` row is never sent again. The Message-ID is derived from the key, so in the
one window that cannot be closed (the worker dies or the store fails after the relay took
the mail, before that commit; seen once in the fault suite, a worker killed -9 then) the
retry carries the same Message-ID and receiving systems can fold the two.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from domain.enrollment import AwaitedStep
from domain.mail import Brand, MailKind, MailReceipt, MailRequest, brand_of
from store.engine import dialect_insert
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
    carry 髙, ① or half-width kana), built with the standard library's compat32 classes
    (``email.mime``, ``email.header``): the same mail as ``EmailMessage`` with
    ``email.policy.default``, whose header objects and refolding cost five times the CPU
    (``python -m bench.mail_build``).

    Non-ASCII headers are RFC 2047 encoded-words folded within 76 characters; the bodies
    are base64, so the mail is 7-bit and needs no 8BITMIME. ``ValueError`` for what can
    never be sent: CR or LF in a header value, or an address that is not ASCII (the relay
    is not asked for SMTPUTF8).
    """
    for value in (mail.subject, sender, to_name, to_addr, message_id):
        if "\r" in value or "\n" in value:
            raise ValueError("a mail header value may not contain CR or LF")
    from_name, from_addr = _sender(sender)
    msg = MIMEMultipart("alternative")
    _set(msg, "Subject", Header(mail.subject, "utf-8", header_name="Subject"))
    _set(msg, "From", _mailbox("From", from_name, from_addr))
    _set(msg, "To", _mailbox("To", f"{to_name} 様", to_addr))
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg.attach(MIMEText(mail.text, "plain", "utf-8"))
    msg.attach(MIMEText(mail.html, "html", "utf-8"))
    return OutgoingMail(
        sender=from_addr, recipients=(to_addr,), data=msg.as_bytes(policy=_ON_THE_WIRE)
    )


# compat32 as SMTP wants it: CRLF line ends; headers folded within 76 characters, so that
# no encoded-word is longer than RFC 2047's 75 (at 78 the standard library makes them 77).
_ON_THE_WIRE = compat32.clone(linesep="\r\n", max_line_length=76)


def _set(msg: Message, name: str, value: str | Header) -> None:
    """compat32 folds a ``Header`` as it encodes it (typeshed types header values as str)."""
    msg[name] = value  # type: ignore[assignment]


def _mailbox(name: str, display_name: str, addr: str) -> str | Header:
    addr.encode("ascii")  # UnicodeEncodeError (a ValueError): the relay takes ASCII only
    if not display_name or (display_name.isascii() and display_name.isprintable()):
        return formataddr((display_name, addr))
    header = Header(display_name, "utf-8", header_name=name)
    header.append(f"<{addr}>", "us-ascii")
    return header


@functools.lru_cache(maxsize=8)
def _sender(sender: str) -> tuple[str, str]:
    """("遠隔モニタリングサービス", "noreply@eco-katsu.example") from the setting."""
    display_name, addr = parseaddr(sender)
    return display_name, addr or sender.strip()


_OUTBOX = OutboxMail.__table__  # type: ignore[attr-defined]
_ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
_ACCOUNT_ADDRESS = sa.select(_ACCOUNTS.c.display_name, _ACCOUNTS.c.email).where(
    _ACCOUNTS.c.id == sa.bindparam("id")
)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1 WHERE status <>
    'sent' RETURNING key``: a row comes back when the mail is the caller's to send."""
    insert = dialect_insert(dialect, _OUTBOX)
    return insert.on_conflict_do_update(
        index_elements=[_OUTBOX.c.key],
        set_={"attempts": _OUTBOX.c.attempts + 1},
        where=_OUTBOX.c.status != "sent",
    ).returning(_OUTBOX.c.key)


def _unknown_recipient() -> ApplicationError:
    return ApplicationError(
        "mail recipient not found", type="mail_recipient_unknown", non_retryable=True
    )


class MailActivities:
    def __init__(self, engine: Engine, smtp: SmtpSettings, renderer: MailRenderer) -> None:
        self._engine = engine
        self._smtp = smtp
        self._renderer = renderer

    def _recipient(self, req: MailRequest) -> tuple[str, str]:
        """(name, address): an account's, or a signup's (whose name is its member's)."""
        if req.account_id is not None:  # every journey mail: one statement
            with self._engine.connect() as conn:
                found = conn.execute(_ACCOUNT_ADDRESS, {"id": req.account_id}).first()
            if found is not None:
                return found.display_name, found.email
            raise _unknown_recipient()
        with Session(self._engine) as session:
            if req.signup_id is not None:
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
        raise _unknown_recipient()

    def _claim(self, req: MailRequest, subject: str, message_id: str) -> bool:
        """Claim the outbox row for this key (one statement: a new row, or one more
        attempt on a row not yet sent); False when the mail was already sent."""
        with self._engine.begin() as conn:
            claimed = conn.execute(
                _claim_statement(self._engine.dialect.name),
                {
                    "key": req.key,
                    "kind": req.kind.value,
                    "account_id": req.account_id,
                    "signup_id": req.signup_id,
                    "message_id": message_id,
                    "subject": subject,
                    "status": "sending",
                    "attempts": 1,
                    "created_at": datetime.now(UTC),
                },
            ).first()
        return claimed is not None

    def _finish(self, key: str, status: str, error: str | None = None) -> None:
        """The row's outcome (nothing to update if the claimed row vanished)."""
        values: dict[str, object] = {"status": status, "last_error": error}
        if status == "sent":
            values["sent_at"] = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(sa.update(_OUTBOX).where(_OUTBOX.c.key == key).values(values))

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
            relay = aiosmtplib.SMTP(
                hostname=self._smtp.host,
                port=self._smtp.port,
                username=self._smtp.username,
                password=self._smtp.password,
                start_tls=self._smtp.start_tls,
                timeout=self._smtp.timeout,
            )
            async with relay:  # leaving it says QUIT; a failing QUIT is ignored
                await relay.sendmail(outgoing.sender, list(outgoing.recipients), outgoing.data)
                # The relay took it: recorded before QUIT, so a crash between the two (which
                # would mail it again) has only the commit's moment, not the relay's goodbye.
                await asyncio.to_thread(self._finish, req.key, "sent")
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
        metrics.MAILS.labels(req.kind.value, "sent").inc()
        return MailReceipt(key=req.key, message_id=message_id)


def _smtp_code(exc: Exception) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return max(codes) if codes else None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    return None
