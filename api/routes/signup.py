"""The スマイルeポイント signup (the guide's pages 9–16), step by step.

The link's token never appears in a URL path or query (access logs record those): the
mailed link carries it after ``#``, which browsers do not send, and the front end posts it
in a body. Opening the link (``/link``) spends nothing; the first form (``/begin``) does.
Each route makes one workflow call through ``api.services.signup``; a retry with the same
``Idempotency-Key`` gets the first attempt's answer.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Path, Request, status

from api.deps import (
    IdempotencyKeyDep,
    SettingsDep,
    SignupServiceDep,
    SignupSessionsDep,
    SignupStepDep,
)
from api.errors import error_responses
from api.schemas import (
    AgreementBody,
    BeginBody,
    CustomerBody,
    DocumentView,
    GatewayBody,
    LinkState,
    LinkToken,
    RegisteredResponse,
    SignupRequest,
    SignupRequested,
    SignupSession,
)
from api.services.signup_requests import accept_signup_request
from domain.errors import ErrorCode
from domain.signup import SignupView

router = APIRouter(prefix="/v1/points", tags=["スマイルeポイント signup"])

# Knowing the two IDs is not enough (api/routes/confirmation.py, domain/holder.py).
HOLDER_STEP3_ERRORS = (
    ErrorCode.SIGNUP_LOCKED,
    ErrorCode.GATEWAY_LOCKED,
    ErrorCode.HOLDER_ASK_LIMIT,
    ErrorCode.HOLDER_DECLINED,
)
HOLDER_REGISTER_ERRORS = (
    ErrorCode.SIGNUP_LOCKED,
    ErrorCode.HOLDER_CONFIRMATION_PENDING,
    ErrorCode.HOLDER_CONFIRMATION_EXPIRED,
    ErrorCode.HOLDER_ASK_LIMIT,
    ErrorCode.HOLDER_DECLINED,
    ErrorCode.APPLICATION_NOT_ACTIVE,
)
SESSION_ERRORS = (
    ErrorCode.SESSION_INVALID,
    ErrorCode.SIGNUP_COMPLETED,
    ErrorCode.SIGNUP_CLOSED,
    ErrorCode.WORKER_UNAVAILABLE,
)


@router.post(
    "/signups",
    response_model=SignupRequested,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(ErrorCode.INVALID_EMAIL, ErrorCode.RATE_LIMITED),
)
async def request_signup(
    body: SignupRequest, request: Request, background: BackgroundTasks, settings: SettingsDep
) -> SignupRequested:
    """メールアドレスの入力: mail a signup link (valid ``ECOKATSU_SIGNUP_LINK_TTL``, 24 h).

    The answer is the same, in the same time, for every address: the work happens after
    it. An address already registered gets a mail saying so (at most
    ``signup_member_notice_cap`` per period), not a different screen. Entering the
    address again while a signup is pending mails a new link and kills the old one.
    """
    await accept_signup_request(request, body.email, background)
    return SignupRequested.for_link_ttl(settings.signup.link_ttl)


@router.post(
    "/link",
    response_model=LinkState,
    responses=error_responses(ErrorCode.WORKER_UNAVAILABLE),
)
async def open_link(body: LinkToken, signups: SignupServiceDep) -> LinkState:
    """The page the mailed link opens: its state, with a message for each. Spends nothing
    (mail scanners open links)."""
    return await signups.link_state(body.token)


@router.post(
    "/begin",
    response_model=SignupSession,
    responses=error_responses(
        ErrorCode.LINK_UNKNOWN,
        ErrorCode.LINK_EXPIRED,
        ErrorCode.LINK_REPLACED,
        ErrorCode.LINK_USED,
        ErrorCode.SIGNUP_COMPLETED,
        ErrorCode.SIGNUP_CLOSED,
        ErrorCode.SERVICE_OTHER_SITE,
        ErrorCode.WORKER_UNAVAILABLE,
    ),
)
async def begin(
    body: BeginBody,
    signups: SignupServiceDep,
    sessions: SignupSessionsDep,
    key: IdempotencyKeyDep,
) -> SignupSession:
    """STEP1 会員登録開始: the service in use; the first submission spends the link.

    ちくでんエコめがね users are sent to NTT Smile Energy's own site (this system validates
    the OMRON path only); choosing it does not spend the link. A retry of the same
    submission gets the same session.
    """
    step = await signups.begin(body, key)
    return SignupSession(session=sessions.issue(step.signup_id, step.seq))


@router.get(
    "/signup/documents/{document}",
    response_model=DocumentView,
    responses=error_responses(*SESSION_ERRORS),
)
async def read_document(
    step: SignupStepDep,
    signups: SignupServiceDep,
    key: IdempotencyKeyDep,
    document: str = Path(description="smile_e_point_terms or smile_e_point_privacy"),
) -> DocumentView:
    """STEP2: one of the two documents; the agreement counts only after both were shown."""
    return await signups.present_document(step, document, key)


@router.post(
    "/signup/agreement",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.DOCUMENTS_NOT_PRESENTED,
        ErrorCode.TERMS_VERSION_OUTDATED,
        ErrorCode.CONTROL_CHARACTER,
    ),
)
async def agree(
    body: AgreementBody, step: SignupStepDep, signups: SignupServiceDep, key: IdempotencyKeyDep
) -> None:
    """STEP2: 上記について確認したので、同意します (both documents, by version)."""
    await signups.agree(step, body, key)


@router.post(
    "/signup/gateway",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.INVALID_GATEWAY_ID,
        ErrorCode.INVALID_PCS_SERIAL,
        ErrorCode.SIGNUP_INCOMPLETE,
        ErrorCode.GATEWAY_NOT_APPLIED,
        ErrorCode.GATEWAY_ALREADY_MEMBER,
        *HOLDER_STEP3_ERRORS,
    ),
)
async def enter_gateway(
    body: GatewayBody, step: SignupStepDep, signups: SignupServiceDep, key: IdempotencyKeyDep
) -> None:
    """STEP3: the gateway ID (12) and PCS serial (8) of a confirmed circle application.

    Wrong pairs are limited per signup (then ``signup_locked``) and per gateway across
    signups (then ``gateway_locked``, right pair or not). A signup whose e-mail is not the
    circle account's own asks the account holder to confirm (see GET /signup).
    """
    await signups.enter_gateway(step, body, key)


@router.post(
    "/signup/customer",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.INVALID_NAME,
        ErrorCode.CORPORATE_NAME,
        ErrorCode.INVALID_FURIGANA,
        ErrorCode.INVALID_POSTAL_CODE,
        ErrorCode.UNKNOWN_POSTAL_CODE,
        ErrorCode.INVALID_PREFECTURE,
        ErrorCode.PREFECTURE_MISMATCH,
        ErrorCode.INVALID_ADDRESS,
        ErrorCode.ADDRESS_USE_HYPHENS,
        ErrorCode.INVALID_PHONE,
        ErrorCode.INVALID_PASSWORD,
        ErrorCode.PASSWORD_MISMATCH,
        ErrorCode.CONTROL_CHARACTER,
        ErrorCode.UNSUPPORTED_CHARACTER,
        ErrorCode.SIGNUP_INCOMPLETE,
    ),
)
async def enter_customer(
    body: CustomerBody, step: SignupStepDep, signups: SignupServiceDep, key: IdempotencyKeyDep
) -> None:
    """STEP4 お客様情報. The password is hashed (argon2id) here; the workflow sees the hash."""
    await signups.enter_customer(step, body, key)


@router.get("/signup", response_model=SignupView, responses=error_responses(*SESSION_ERRORS))
async def confirmation(step: SignupStepDep, signups: SignupServiceDep) -> SignupView:
    """STEP5 登録内容の確認: everything entered, the password masked."""
    return await signups.view(step)


@router.post(
    "/signup/register",
    response_model=RegisteredResponse,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.SIGNUP_INCOMPLETE,
        ErrorCode.GATEWAY_ALREADY_MEMBER,
        ErrorCode.EMAIL_ALREADY_MEMBER,
        *HOLDER_REGISTER_ERRORS,
    ),
)
async def register(
    step: SignupStepDep, signups: SignupServiceDep, key: IdempotencyKeyDep
) -> RegisteredResponse:
    """STEP5 登録する → STEP6. Submitting twice registers once and answers the same.

    Waits for the circle account holder's confirmation when one is needed
    (``holder_confirmation_pending``); the application must still be active.
    """
    return await signups.register(step, key)
