"""The スマイルeポイント signup (the guide's pages 9–16), step by step.

The link's token never appears in a URL path or query (access logs record those): the
mailed link carries it after ``#``, which browsers do not send, and the front end posts it
in a body. Opening the link (``/link``) spends nothing; the first form (``/begin``) does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Path, Request, status
from temporalio.client import Client, WorkflowHandle

from api.deps import ClientDep, EngineDep, SettingsDep
from api.errors import ApiError, error_responses
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
from api.security import SignupSessions, hash_password
from api.services.enrollment import answer
from api.services.signup_requests import accept_signup_request
from config import Settings, document_text
from domain.customer import check_password
from domain.errors import ErrorCode, FieldRuleError, message_for
from domain.ids import signup_workflow_id
from domain.signup import (
    AgreeRequest,
    BeginRequest,
    CustomerEntry,
    GatewayEntry,
    PresentDocument,
    RegisterRequest,
    SignupStatus,
    SignupView,
)
from store import signup as signup_store
from workflows.signup import SignupWorkflow

T = TypeVar("T")
router = APIRouter(prefix="/v1/points", tags=["スマイルeポイント signup"])

Handle = WorkflowHandle[SignupWorkflow, SignupView]
SESSION_ERRORS = (
    ErrorCode.SESSION_INVALID,
    ErrorCode.SIGNUP_COMPLETED,
    ErrorCode.SIGNUP_CLOSED,
    ErrorCode.WORKER_UNAVAILABLE,
)


def _handle(client: Client, signup_id: str) -> Handle:
    return client.get_workflow_handle_for(SignupWorkflow.run, signup_workflow_id(signup_id))


async def signup_answer(settings: Settings, handle: Handle, call: Awaitable[T]) -> T:
    """``answer`` for a signup: an update to a signup that has ended says how it ended."""
    try:
        return await answer(settings, call)
    except ApiError as err:
        if err.code != ErrorCode.JOURNEY_CLOSED:
            raise
        view = await answer(settings, handle.query(SignupWorkflow.get_signup))
        registered = view.status == SignupStatus.REGISTERED
        raise ApiError(
            ErrorCode.SIGNUP_COMPLETED if registered else ErrorCode.SIGNUP_CLOSED
        ) from None


class Step:
    """The signup a request's ``X-Signup-Session`` belongs to."""

    def __init__(self, seq: int, handle: Handle) -> None:
        self.seq, self.handle = seq, handle


def current_step(
    request: Request,
    client: ClientDep,
    x_signup_session: Annotated[str | None, Header(description="From POST /begin")] = None,
) -> Step:
    sessions: SignupSessions = request.app.state.signup_sessions
    found = sessions.read(x_signup_session) if x_signup_session else None
    if found is None:
        raise ApiError(ErrorCode.SESSION_INVALID)
    signup_id, seq = found
    return Step(seq, _handle(client, signup_id))


StepDep = Annotated[Step, Depends(current_step)]


@router.post(
    "/signups",
    response_model=SignupRequested,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(ErrorCode.INVALID_EMAIL, ErrorCode.RATE_LIMITED),
)
async def request_signup(
    body: SignupRequest, request: Request, background: BackgroundTasks
) -> SignupRequested:
    """メールアドレスの入力: mail a signup link valid 24 hours.

    The answer is the same, in the same time, for every address: the work happens after
    it. An address already registered gets a mail saying so (at most
    ``signup_member_notice_cap`` per period), not a different screen. Entering the
    address again while a signup is pending mails a new link and kills the old one.
    """
    await accept_signup_request(request, body.email, background)
    return SignupRequested()


@router.post(
    "/link",
    response_model=LinkState,
    responses=error_responses(ErrorCode.WORKER_UNAVAILABLE),
)
async def open_link(
    body: LinkToken, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> LinkState:
    """The page the mailed link opens: its state, with a message for each. Spends nothing
    (mail scanners open links)."""
    signup = await asyncio.to_thread(signup_store.signup_for_token, engine, body.token)
    if signup is None:
        return LinkState(state="link_unknown", message=message_for(ErrorCode.LINK_UNKNOWN))
    handle = _handle(client, signup.id)
    state = await answer(
        settings, handle.query(SignupWorkflow.link_state, signup_store.token_hash(body.token))
    )
    if state == "valid":  # only a valid link needs its expiry: one more query then
        view = await answer(settings, handle.query(SignupWorkflow.get_signup))
        return LinkState(state="valid", message="", expires_at=view.link_expires_at)
    return LinkState.model_validate({"state": state, "message": message_for(state)})


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
    body: BeginBody, request: Request, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> SignupSession:
    """STEP1 会員登録開始: the service in use; the first submission spends the link.

    ちくでんエコめがね users are sent to NTT Smile Energy's own site (this system validates
    the OMRON path only); choosing it does not spend the link.
    """
    signup = await asyncio.to_thread(signup_store.signup_for_token, engine, body.token)
    if signup is None:
        raise ApiError(ErrorCode.LINK_UNKNOWN)
    handle = _handle(client, signup.id)
    begun = await signup_answer(
        settings,
        handle,
        handle.execute_update(
            SignupWorkflow.begin,
            BeginRequest(token_sha256=signup_store.token_hash(body.token), service=body.service),
        ),
    )
    sessions: SignupSessions = request.app.state.signup_sessions
    return SignupSession(session=sessions.issue(signup.id, begun.seq))


@router.get(
    "/signup/documents/{document}",
    response_model=DocumentView,
    responses=error_responses(*SESSION_ERRORS),
)
async def read_document(
    step: StepDep,
    settings: SettingsDep,
    document: str = Path(description="smile_e_point_terms or smile_e_point_privacy"),
) -> DocumentView:
    """STEP2: one of the two documents; the agreement counts only after both were shown."""
    docs = {
        d.document: (d, path)
        for d, path in (
            (settings.points_terms(), settings.points_terms_file),
            (settings.points_privacy(), settings.points_privacy_file),
        )
    }
    if document not in docs:
        raise ApiError(ErrorCode.INVALID_INPUT, loc=["path", "document"])
    view = await answer(settings, step.handle.query(SignupWorkflow.get_signup))
    if document not in view.documents_presented:
        await signup_answer(
            settings,
            step.handle,
            step.handle.execute_update(
                SignupWorkflow.present_document,
                PresentDocument(seq=step.seq, document=document),
            ),
        )
    terms, path = docs[document]
    return DocumentView(**terms.model_dump(), text=document_text(path))


@router.post(
    "/signup/agreement",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *SESSION_ERRORS, ErrorCode.DOCUMENTS_NOT_PRESENTED, ErrorCode.TERMS_VERSION_OUTDATED
    ),
)
async def agree(body: AgreementBody, step: StepDep, settings: SettingsDep) -> None:
    """STEP2: 上記について確認したので、同意します (both documents, by version)."""
    await signup_answer(
        settings,
        step.handle,
        step.handle.execute_update(
            SignupWorkflow.agree,
            AgreeRequest(
                seq=step.seq,
                service_terms_version=body.service_terms_version,
                privacy_policy_version=body.privacy_policy_version,
            ),
        ),
    )


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
    ),
)
async def enter_gateway(body: GatewayBody, step: StepDep, settings: SettingsDep) -> None:
    """STEP3: the gateway ID (12) and PCS serial (8) of a confirmed circle application."""
    await signup_answer(
        settings,
        step.handle,
        step.handle.execute_update(
            SignupWorkflow.enter_gateway,
            GatewayEntry(seq=step.seq, gateway_id=body.gateway_id, pcs_serial=body.pcs_serial),
        ),
    )


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
        ErrorCode.SIGNUP_INCOMPLETE,
    ),
)
async def enter_customer(body: CustomerBody, step: StepDep, settings: SettingsDep) -> None:
    """STEP4 お客様情報. The password is hashed (argon2id) here; the workflow sees the hash."""
    try:
        check_password(body.password)
    except FieldRuleError as err:
        raise ApiError(err.code, loc=["body", "password"]) from None
    if body.password_confirmation != body.password:
        raise ApiError(ErrorCode.PASSWORD_MISMATCH, loc=["body", "password_confirmation"])
    password_hash = await asyncio.to_thread(hash_password, body.password)
    await signup_answer(
        settings,
        step.handle,
        step.handle.execute_update(
            SignupWorkflow.enter_customer,
            CustomerEntry(seq=step.seq, info=body.to_record(), password_hash=password_hash),
        ),
    )


@router.get("/signup", response_model=SignupView, responses=error_responses(*SESSION_ERRORS))
async def confirmation(step: StepDep, settings: SettingsDep) -> SignupView:
    """STEP5 登録内容の確認: everything entered, the password masked."""
    return await answer(settings, step.handle.query(SignupWorkflow.get_signup))


@router.post(
    "/signup/register",
    response_model=RegisteredResponse,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.SIGNUP_INCOMPLETE,
        ErrorCode.GATEWAY_ALREADY_MEMBER,
        ErrorCode.EMAIL_ALREADY_MEMBER,
    ),
)
async def register(step: StepDep, settings: SettingsDep) -> RegisteredResponse:
    """STEP5 登録する → STEP6. Submitting twice registers once and answers the same."""
    registered = await signup_answer(
        settings,
        step.handle,
        step.handle.execute_update(SignupWorkflow.register, RegisterRequest(seq=step.seq)),
    )
    view = await answer(settings, step.handle.query(SignupWorkflow.get_signup))
    return RegisteredResponse(
        name=view.info.name if view.info else "",
        gateway_id=registered.gateway_id,
        registered_at=registered.registered_at,
        my_page_url=settings.points_login_url,
    )
