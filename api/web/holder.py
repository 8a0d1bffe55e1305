"""The circle account holder's page for a points signup on their gateway from another
address (knowing the two IDs is not enough; ``api/routes/confirmation.py``).

The mailed link is ``/site/points-confirmation#<token>``: as on the registration page, the
token stays out of every URL the server sees; ``static/registration.js`` posts it in the
page's form (or the holder pastes the link). Opening the page spends nothing; only the
POST of 承認する or 承認しない decides, through the same code as the API's route.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import TemporalConnection
from api.errors import ApiError
from api.services import holder as holder_service
from api.web.pages import CsrfFailed, FieldError, Page, csrf_failed
from domain.errors import ErrorCode, message_for
from domain.jst import format_jst
from store import holder as holder_store

router = APIRouter(prefix="/site/points-confirmation", include_in_schema=False)
TITLE = "スマイルeポイント登録の確認"
ANSWERED = {
    "confirmed": (
        "承認しました。お申し込みの方が「登録する」を押すと、スマイルeポイントへの登録が完了します。"
    ),
    "declined": (
        "承認しませんでした。この会員登録の手続きは終了します。"
        "お心当たりのない場合は、このままで問題ありません。"
    ),
}


@router.get("")
async def landing(request: Request) -> Response:
    page = Page.load(request)
    return page.render("site/holder_landing.html", title=TITLE, user=None, errors=[])


@router.post("")
async def take_token(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    token = form.get("token", "").strip().rsplit("#", 1)[-1].strip()
    if not 20 <= len(token) <= 200:
        errors = [FieldError("token", message_for(ErrorCode.CONFIRMATION_UNKNOWN))]
        return page.render(
            "site/holder_landing.html", status=422, title=TITLE, user=None, errors=errors
        )
    page.set("h", token)
    return page.redirect("/site/points-confirmation/request")


@router.get("/request")
async def show(request: Request) -> Response:
    page = Page.load(request)
    token = page.get("h")
    facts = (
        await asyncio.to_thread(
            holder_store.confirmation_for_token, request.app.state.engine, token
        )
        if token
        else None
    )
    refused = ErrorCode.CONFIRMATION_UNKNOWN if facts is None else facts.refusal(datetime.now(UTC))
    if facts is None or refused is not None:
        code = refused or ErrorCode.CONFIRMATION_UNKNOWN
        return page.render(
            "site/holder_done.html", status=410, title=TITLE, user=None,
            message=message_for(code), state=code.value,
        )  # fmt: skip
    return page.render(
        "site/holder_request.html", title=TITLE, user=None, facts=facts,
        requested_at=format_jst(facts.requested_at), expires_at=format_jst(facts.expires_at),
    )  # fmt: skip


@router.post("/request")
async def decide(request: Request) -> Response:
    """承認する or 承認しない (single use: a second click is told it was answered)."""
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    token = page.get("h")
    facts = (
        await asyncio.to_thread(
            holder_store.confirmation_for_token, request.app.state.engine, token
        )
        if token
        else None
    )
    confirm = form.get("decision") == "confirm"
    try:
        if facts is None:
            raise ApiError(ErrorCode.CONFIRMATION_UNKNOWN)
        temporal: TemporalConnection = request.app.state.temporal
        settings = request.app.state.settings
        await holder_service.decide(await temporal.get(), settings, facts, confirm, "mail_link")
    except ApiError as err:
        return page.render(
            "site/holder_done.html", status=err.status, title=TITLE, user=None,
            message=message_for(err.code), state=err.code.value,
        )  # fmt: skip
    page.set("h", None)
    page.set("n", "confirmed" if confirm else "declined")
    return page.redirect("/site/points-confirmation/done")


@router.get("/done")
async def done(request: Request) -> Response:
    page = Page.load(request)
    answered = page.get("n")
    message = ANSWERED.get(answered or "", message_for(ErrorCode.CONFIRMATION_USED))
    return page.render(
        "site/holder_done.html", title=TITLE, user=None, message=message, state=answered or ""
    )
