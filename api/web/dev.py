"""The development mail inbox (``/dev/mail``): the mails the local SMTP sink kept, newest
first, with their links clickable, so a person walks the whole journey in one browser.

It exists only when ``ECOKATSU_WEB_DEV_MAIL_DIR`` is set (``make run`` sets it); in
production the route answers 404 like any unknown path.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from api.web.pages import Page
from devtools.mailsink import LINK

router = APIRouter(prefix="/dev", include_in_schema=False)
SHOWN = 30


def _parts(text: str) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_link), so the template escapes each piece."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in LINK.finditer(text):
        pieces.append((text[at : match.start()], False))
        pieces.append((match.group(0), True))
        at = match.end()
    pieces.append((text[at:], False))
    return pieces


def _read(path: Path) -> dict[str, object] | None:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    if not isinstance(message, EmailMessage):
        return None
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return {
        "name": path.name,
        "subject": str(message["Subject"] or ""),
        "to": str(message["To"] or ""),
        "date": str(message["Date"] or ""),
        "parts": _parts(text),
    }


@router.get("/mail")
async def inbox(request: Request) -> Response:
    page = Page.load(request)
    directory = page.settings.web_dev_mail_dir
    if directory is None:
        raise HTTPException(404)
    files = sorted(directory.glob("*.eml"), reverse=True)[:SHOWN] if directory.is_dir() else []
    mails = [m for m in (_read(p) for p in files) if m is not None]
    return page.render("dev_mail.html", title="受信メール一覧（開発用）", mails=mails)
