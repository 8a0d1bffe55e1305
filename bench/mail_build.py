"""CPU per mail of building and flattening one mail (``python -m bench.mail_build``).

A typical mail: the completion mail rendered by the worker's ``MailRenderer`` (Japanese
subject, a name with 様, UTF-8 text and HTML), to a display name the header must encode.
Each way is timed in process CPU time over ``--n`` mails, best of ``--rounds`` (the ways
alternate, so a busy neighbour hurts them alike). Rendering is left out: it is the same
for every way.

- ``email.policy.default``: the way before (``EmailMessage``, ``set_content`` /
  ``add_alternative``, then aiosmtplib's ``flatten_message`` with ``policy.SMTP``)
- ``compat32``: ``MIMEMultipart('alternative')`` of two ``MIMEText(..., 'utf-8')``, a
  ``Header`` subject, ``formataddr`` names, flattened as aiosmtplib flattens a ``Message``
- ``activities.mail``: what ``build_message`` does now (the compat32 classes, a
  ``Header`` for each non-ASCII name, folded at 76, CRLF)

``--deliver`` times ``MailActivities.deliver`` instead, whole (outbox and recipient in a
fresh SQLite file, its ``asyncio.to_thread`` hops, rendering, building), with the SMTP
conversation left out: ``aiosmtplib.send`` is replaced by a stub that only flattens what
it is given, as aiosmtplib would. CPU of the whole process (the worker threads too).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtplib.email import flatten_message
from sqlmodel import Session

from activities.mail import (
    MailActivities,
    RenderedMail,
    SmtpSettings,
    build_message,
    message_id_for,
)
from config import Settings
from domain.mail import MailKind, MailRequest
from store.engine import make_engine, migrate
from store.tables import Account
from worker import mail_renderer

NAME = "髙橋 ①ｱｲｳ"
ADDRESS = "customer-0123456789@example.com"
CONTEXT = {
    "name": NAME,
    "applied_at": "2022/06/20 19:25",
    "gateway_id": "GW0000000001",
    "pcs_serial": "PCS00001",
}


def policy_default(mail: RenderedMail, sender: str, message_id: str) -> bytes:
    """The way before: the default policy's header objects, refolded by the SMTP policy."""
    msg = EmailMessage()
    msg["Subject"] = mail.subject
    msg["From"] = sender
    msg["To"] = formataddr((f"{NAME} 様", ADDRESS))
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg.set_content(mail.text, charset="utf-8")
    msg.add_alternative(mail.html, subtype="html", charset="utf-8")
    return flatten_message(msg)


def compat32(mail: RenderedMail, sender: str, message_id: str) -> bytes:
    msg = MIMEMultipart("alternative")
    msg["Subject"] = Header(mail.subject, "utf-8")  # type: ignore[assignment]  # compat32 takes one
    sender_name, sender_addr = parseaddr(sender)
    msg["From"] = formataddr((sender_name, sender_addr), "utf-8")
    msg["To"] = formataddr((f"{NAME} 様", ADDRESS), "utf-8")
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg.attach(MIMEText(mail.text, "plain", "utf-8"))
    msg.attach(MIMEText(mail.html, "html", "utf-8"))
    return flatten_message(msg)


def current(mail: RenderedMail, sender: str, message_id: str) -> bytes:
    return build_message(mail, sender, NAME, ADDRESS, message_id).data


WAYS: dict[str, Callable[[RenderedMail, str, str], bytes]] = {
    "email.policy.default (before)": policy_default,
    "compat32 MIME classes": compat32,
    "activities.mail.build_message": current,
}


def cpu_us_per_mail(
    way: Callable[[RenderedMail, str, str], bytes], mail: RenderedMail, n: int
) -> float:
    sender = Settings().mail_from
    message_id = message_id_for("bench-mail", "eco-katsu.example")
    start = time.process_time_ns()
    for _ in range(n):
        way(mail, sender, message_id)
    return (time.process_time_ns() - start) / n / 1000


async def deliver_cpu_us(n: int, rounds: int) -> list[float]:
    """CPU per mail of ``deliver`` with the SMTP conversation stubbed out, per round."""

    async def flatten_only(message: Any, /, **_: Any) -> None:
        if not isinstance(message, bytes):
            flatten_message(message)

    real_send = aiosmtplib.send
    aiosmtplib.send = flatten_only  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
            migrate(url)
            engine = make_engine(url)
            account = Account(
                email=ADDRESS,
                password_hash="-",  # noqa: S106  (no login: a bench row)
                display_name=NAME,
                holder_type="individual",
            )
            with Session(engine) as session:
                session.add(account)
                session.commit()
                session.refresh(account)
            smtp = SmtpSettings("127.0.0.1", 1025, Settings().mail_from, "eco-katsu.example")
            mail = MailActivities(engine, smtp, mail_renderer(Settings()))
            context = {k: v for k, v in CONTEXT.items() if k != "name"}
            results = []
            for _ in range(rounds):
                requests = [
                    MailRequest(
                        key=str(uuid.uuid4()),
                        kind=MailKind.APPLICATION_COMPLETE,
                        account_id=account.id,
                        context=context,
                    )
                    for _ in range(n)
                ]
                start = time.process_time_ns()
                for req in requests:
                    await mail.deliver(req)
                results.append((time.process_time_ns() - start) / n / 1000)
            engine.dispose()
            return results
    finally:
        aiosmtplib.send = real_send


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_build", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="mails per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deliver", action="store_true", help="time deliver() whole")
    args = parser.parse_args()
    if args.deliver:
        values = asyncio.run(deliver_cpu_us(args.n, args.rounds))
        print(
            f"deliver, SMTP stubbed: {min(values):.1f} µs CPU/mail "
            f"(median {statistics.median(values):.1f}), {args.n} mails x {args.rounds} rounds"
        )
        return
    mail = mail_renderer(Settings()).render(MailKind.APPLICATION_COMPLETE, CONTEXT)
    size = {name: len(way(mail, Settings().mail_from, "<m@x>")) for name, way in WAYS.items()}
    print(
        f"mail: subject {len(mail.subject)} chars, text {len(mail.text.encode())} B, "
        f"html {len(mail.html.encode())} B (UTF-8); {args.n} mails x {args.rounds} rounds"
    )
    timings: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(args.rounds):
        for name, way in WAYS.items():
            timings[name].append(cpu_us_per_mail(way, mail, args.n))
    base = min(timings[next(iter(WAYS))])
    for name, values in timings.items():
        best = min(values)
        print(
            f"{name:32} {best:8.1f} µs CPU/mail (median {statistics.median(values):7.1f}), "
            f"{size[name]:5} B on the wire, {best / base:5.1%} of before"
        )


if __name__ == "__main__":
    main()
