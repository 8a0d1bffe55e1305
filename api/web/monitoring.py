"""The monitoring site's pages (管理・登録サイト, the guide's pages 4–8), in Japanese.

Each POST goes through the same code as the API (``api.routes.session.log_in``,
``api.services.starts`` and ``api.services.enrollment``), then redirects (303) to a GET,
so the back button never submits again. 申込確定 and 解約 carry an idempotency key in a
hidden field: a double click is one update.
"""

from __future__ import annotations

import functools
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session
from temporalio.client import Client

from api.deps import TemporalConnection
from api.errors import ApiError
from api.routes.session import log_in
from api.schemas import ConsentBody, LoginRequest
from api.security import SessionTokens
from api.services import enrollment as enrollment_service
from api.services import starts as starts_service
from api.web.pages import CsrfFailed, FieldError, Page, csrf_failed
from config import document_text
from domain.enrollment import ApplicationState, GatewayReason, GatewayView, Stage
from domain.errors import ErrorCode, FieldRuleError, message_for
from domain.jst import format_jst
from domain.values import parse_gateway_id
from store.tables import Account

router = APIRouter(prefix="/site", include_in_schema=False)

REASONS = {
    GatewayReason.MODEL_NOT_SUPPORTED: (
        "対象機種ではありません（対象はKPBP-Aシリーズ、スマートPVマルチです）。"
    ),
    GatewayReason.PV_UNIT_NOT_IN_USE: "PVユニットをご使用中でないため、お申込みいただけません。",
    GatewayReason.BATTERY_UNIT_NOT_IN_USE: (
        "蓄電池ユニットをご使用中でないため、お申込みいただけません。"
    ),
}
STAGE_TEXT = {
    Stage.DECLINED: "会員規約に同意いただけなかったため、お申込みの手続きは終了しました。",
    Stage.INELIGIBLE: "お客様のアカウントは「みんなでつくるエコ活サークル」の対象外です"
    "（個人名でのご登録で、対象のゲートウェイをお持ちであることが必要です）。",
    Stage.WITHDRAWN: "すべてのお申込みを解約しました。",
}


def _account(page: Page) -> Account | None:
    """The logged-in account (detached), or None."""
    token = page.get("a")
    tokens: SessionTokens = page.request.app.state.tokens
    account_id = tokens.account_id(token) if token else None
    if account_id is None:
        return None
    with Session(page.request.app.state.engine) as session:
        account = session.get(Account, account_id)
        if account is not None:
            session.expunge(account)
    return account


async def _client(page: Page) -> Client:
    temporal: TemporalConnection = page.request.app.state.temporal
    return await temporal.get()


def _trouble(page: Page, err: ApiError, account: Account | None) -> Response:
    return page.render(
        "site/trouble.html",
        status=err.status if err.status >= 400 else 500,
        title="エラー",
        user=account.display_name if account else None,
        message=message_for(err.code),
    )


@router.get("/login")
async def login_form(request: Request) -> Response:
    page = Page.load(request)
    if _account(page) is not None:
        return page.redirect("/site/menu")
    return page.render("site/login.html", title="ログイン", user=None, errors=[], user_id="")


@router.post("/login")
async def login(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    user_id = form.get("user_id", "")
    errors = []
    if not user_id.strip():
        errors.append(FieldError("user_id", "ユーザIDを入力してください。"))
    if not form.get("password"):
        errors.append(FieldError("password", "パスワードを入力してください。"))
    if not errors:
        try:
            body = LoginRequest(user_id=user_id, password=form.get("password", ""))
            answer = await log_in(
                body,
                request,
                request.app.state.engine,
                request.app.state.tokens,
                request.app.state.settings,
            )
            page.set("a", answer.access_token)
            return page.redirect("/site/menu")
        except ApiError as err:
            # Never which half was wrong; a lock (too many failures) says so.
            code = ErrorCode.LOGIN_THROTTLED if err.code == ErrorCode.LOGIN_THROTTLED else None
            errors.append(FieldError("user_id", message_for(code or ErrorCode.LOGIN_FAILED)))
        except ValidationError:
            errors.append(FieldError("user_id", message_for(ErrorCode.LOGIN_FAILED)))
    return page.render(
        "site/login.html",
        status=401 if errors else 200,
        title="ログイン",
        user=None,
        errors=errors,
        user_id=user_id,
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    page = Page.load(request)
    try:
        await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    page.set("a", None)
    return page.redirect("/site/login")


@router.get("/menu")
async def menu(request: Request) -> Response:
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    return page.render("site/menu.html", title="メインメニュー", user=account.display_name)


@router.get("/circle")
async def circle(request: Request) -> Response:
    """「みんなでつくるエコ活サークル」: start or resume the journey (safe to repeat), then
    the terms while consent is awaited, else the gateways."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    app = request.app
    try:
        _, state = await starts_service.start_or_resume(
            await _client(page), app.state.engine, app.state.settings, account.id
        )
    except ApiError as err:
        return _trouble(page, err, account)
    if state.stage == Stage.AWAITING_CONSENT:
        return page.redirect("/site/circle/terms")
    if state.stage.is_final:
        return page.render(
            "site/closed.html",
            title="みんなでつくるエコ活サークル",
            user=account.display_name,
            message=STAGE_TEXT.get(state.stage, message_for(ErrorCode.JOURNEY_CLOSED)),
        )
    return page.redirect("/site/circle/gateways")


@router.get("/circle/terms")
async def terms(request: Request) -> Response:
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    settings = request.app.state.settings
    document = settings.circle_terms()
    return page.render(
        "site/terms.html",
        title="申込条件と会員規約",
        user=account.display_name,
        terms_version=document.version,
        terms_text=document_text(settings.circle_terms_file),
        errors=[],
    )


@router.post("/circle/consent")
async def consent(request: Request) -> Response:
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    agree = form.get("decision") == "agree"
    app = request.app
    try:
        body = ConsentBody(agree=agree, terms_version=form.get("terms_version", ""))
        await enrollment_service.decide_terms(
            await _client(page), app.state.settings, account.id, body, form.get("idem") or None
        )
    except ApiError as err:
        if err.code == ErrorCode.WRONG_STAGE:  # already decided (e.g. a second click)
            return page.redirect("/site/circle")
        return _trouble(page, err, account)
    return page.redirect("/site/circle" if not agree else "/site/circle/gateways")


async def _gateways(page: Page, account: Account) -> tuple[Stage, list[GatewayView]]:
    state = await enrollment_service.status_of(
        functools.partial(_client, page),
        page.request.app.state.engine,
        page.request.app.state.settings,
        account.id,
    )
    return state.stage, state.gateways


@router.get("/circle/gateways")
async def gateways(request: Request) -> Response:
    """申込状態の照会・申込・解約."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        stage, found = await _gateways(page, account)
    except ApiError as err:
        if err.code == ErrorCode.JOURNEY_NOT_FOUND:
            return page.redirect("/site/circle")
        return _trouble(page, err, account)
    if stage == Stage.AWAITING_CONSENT:
        return page.redirect("/site/circle/terms")
    notice = page.get("n")
    page.set("n", None)
    rows = [
        {
            "gateway": g,
            "reasons": [REASONS[r] for r in g.reasons],
            "applied_at": format_jst(g.applied_at) if g.applied_at else "",
        }
        for g in found
    ]
    return page.render(
        "site/gateways.html",
        title="申込状態の照会・申込・解約",
        user=account.display_name,
        rows=rows,
        active=ApplicationState.ACTIVE,
        notice=notice,
        closed=STAGE_TEXT.get(stage) if stage.is_final else None,
    )


def _find(found: list[GatewayView], gateway_id: str) -> GatewayView | None:
    try:
        canonical = parse_gateway_id(gateway_id)
    except FieldRuleError:
        return None
    return next((g for g in found if g.gateway_id == canonical), None)


@router.get("/circle/gateways/{gateway_id}")
async def confirm_apply(request: Request, gateway_id: str) -> Response:
    """The gateway's page: 申込確定 (eligible, not applied) or 解約 (applied)."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        _, found = await _gateways(page, account)
    except ApiError as err:
        return _trouble(page, err, account)
    gateway = _find(found, gateway_id)
    if gateway is None:
        return _trouble(page, ApiError(ErrorCode.GATEWAY_NOT_OWNED), account)
    return page.render(
        "site/gateway.html",
        title="申込内容の確認",
        user=account.display_name,
        gateway=gateway,
        reasons=[REASONS[r] for r in gateway.reasons],
        active=ApplicationState.ACTIVE,
        idem=uuid.uuid4().hex,
    )


@router.post("/circle/gateways/{gateway_id}/apply")
async def apply(request: Request, gateway_id: str) -> Response:
    """申込確定 → 申込完了 (a double click is one application: the same key)."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    app = request.app
    try:
        canonical = parse_gateway_id(gateway_id)
        await enrollment_service.apply_gateway(
            functools.partial(_client, page),
            app.state.engine,
            app.state.settings,
            account.id,
            canonical,
            form.get("idem") or None,
        )
    except FieldRuleError as err:
        return _trouble(page, ApiError(err.code), account)
    except ApiError as err:
        if err.code != ErrorCode.GATEWAY_ALREADY_APPLIED:
            return _trouble(page, err, account)
    return page.redirect(f"/site/circle/gateways/{canonical}/complete")


@router.get("/circle/gateways/{gateway_id}/complete")
async def complete(request: Request, gateway_id: str) -> Response:
    """申込完了: 申込完了日時, ゲートウェイID, パワーコンディショナ製造番号."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        _, found = await _gateways(page, account)
    except ApiError as err:
        return _trouble(page, err, account)
    gateway = _find(found, gateway_id)
    if gateway is None or gateway.application != ApplicationState.ACTIVE or not gateway.applied_at:
        return page.redirect("/site/circle/gateways")
    return page.render(
        "site/complete.html",
        title="申込完了",
        user=account.display_name,
        gateway=gateway,
        applied_at=format_jst(gateway.applied_at),
        signup_url=request.app.state.settings.points_signup_url,
    )


@router.get("/circle/gateways/{gateway_id}/cancel")
async def confirm_cancel(request: Request, gateway_id: str) -> Response:
    """解約の確認."""
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        _, found = await _gateways(page, account)
    except ApiError as err:
        return _trouble(page, err, account)
    gateway = _find(found, gateway_id)
    if gateway is None or gateway.application != ApplicationState.ACTIVE:
        return page.redirect("/site/circle/gateways")
    return page.render(
        "site/cancel.html",
        title="解約の確認",
        user=account.display_name,
        gateway=gateway,
        idem=uuid.uuid4().hex,
    )


@router.post("/circle/gateways/{gateway_id}/cancel")
async def cancel(request: Request, gateway_id: str) -> Response:
    page = Page.load(request)
    account = _account(page)
    if account is None:
        return page.redirect("/site/login")
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    app = request.app
    try:
        canonical = parse_gateway_id(gateway_id)
        await enrollment_service.cancel_application(
            functools.partial(_client, page),
            app.state.engine,
            app.state.settings,
            account.id,
            canonical,
            form.get("idem") or None,
        )
    except FieldRuleError as err:
        return _trouble(page, ApiError(err.code), account)
    except ApiError as err:
        if err.code not in (ErrorCode.APPLICATION_NOT_FOUND, ErrorCode.JOURNEY_CLOSED):
            return _trouble(page, err, account)
    page.set("n", f"ゲートウェイID {canonical} の解約が完了しました。")
    return page.redirect("/site/circle/gateways")
