"""What the SMTP sink process delivered: its .eml files, read as a customer's mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path

from devtools.mailsink import ReceivedMail

# Mail kinds by subject (the templates' words; a kind this suite does not know is "other").
KINDS = (
    ("（再送）", "reminder"),
    ("お申込みのご案内", "invitation"),
    ("お申込み完了", "application_complete"),
    ("会員登録URLのお知らせ", "signup_link"),
    ("会員登録完了", "signup_complete"),
)


@dataclass(frozen=True)
class Mail:
    file: str
    arrived: float  # monotonic-comparable: seconds since the scenario's start
    to: str
    subject: str
    kind: str
    message_id: str
    idempotency_key: str | None  # a header carrying the mail's key, if the sender adds one
    links: tuple[str, ...]
    tokens: tuple[str, ...]  # signup-link tokens (after '#')


class Mailbox:
    def __init__(self, directory: Path, registration_url: str, clock_wall: float) -> None:
        self.directory = directory
        self.registration_url = registration_url
        self._clock_wall = clock_wall  # wall time of the scenario's start
        self._mails: dict[str, Mail] = {}

    def scan(self) -> list[Mail]:
        """Every mail delivered so far, in order of arrival, read as soon as it is whole."""
        if self.directory.exists():
            for path in sorted(self.directory.glob("*.eml")):
                if path.name not in self._mails:
                    mail = self._parse(path)
                    if mail is not None:
                        self._mails[path.name] = mail
        return sorted(self._mails.values(), key=lambda m: (m.arrived, m.file))

    def _parse(self, path: Path) -> Mail | None:
        mtime = path.stat().st_mtime
        content = path.read_bytes()
        # Our mails are multipart/alternative: a file still being written lacks the
        # closing boundary ("--…--"), and waits for the next scan.
        if not content.rstrip().endswith(b"--"):
            return None
        received = ReceivedMail(envelope_to=[], content=content)
        message = received.message
        if message["Message-ID"] is None:
            return None
        [(_, to)] = getaddresses([str(message["To"])])
        subject = received.subject
        kind = next((k for words, k in KINDS if words in subject), "other")
        links = tuple(received.links)
        prefix = self.registration_url + "#"
        key = next(
            (str(v) for k, v in message.items() if "idempotency" in k.lower()),
            None,
        )
        return Mail(
            file=path.name,
            arrived=round(mtime - self._clock_wall, 2),
            to=to.lower(),
            subject=subject,
            kind=kind,
            message_id=str(message["Message-ID"]).strip(),
            idempotency_key=key,
            links=links,
            tokens=tuple(link[len(prefix) :] for link in links if link.startswith(prefix)),
        )

    def for_address(self, address: str, kind: str | None = None) -> list[Mail]:
        return [m for m in self.scan() if m.to == address and (kind is None or m.kind == kind)]
