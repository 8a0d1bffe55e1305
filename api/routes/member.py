"""The スマイルeポイント member's side (マイページ): log in, 照会, change of e-mail, 退会.

Authenticated as the member: the e-mail and the password set at STEP4 (argon2id, as the
circle log-in), a session token of its own kind. The change-of-e-mail link carries its
token after ``#`` (never in a URL path or query); the confirmation page posts it. Each
action is one call to the member's workflow through ``api.services.member``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import (
    ClientDep,
    EngineDep,
    IdempotencyKeyDep,
    SettingsDep,
    SystemDep,
)
from api.errors import ApiError, error_responses
from api.ratelimit import LoginGuard
from api.schemas import (
    AgreedDocumentView,
    EmailChangeBody,
    EmailChangeDone,
    EmailChangeRequested,
    LinkToken,
    MemberCancelBody,
    MemberCancelled,
    MemberLoginRequest,
    MemberLoginResponse,
    MemberView,
    SuspendedMemberRow,
)
from api.security import MemberTokens, verify_password_async
from api.services.member import MemberService
from domain.errors import ErrorCode
from store import member as member_store

router = APIRouter(prefix="/v1/points/member", tags=["スマイルeポイント member"])
system_router = APIRouter(prefix="/v1/system", tags=["system"])

_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/points/member/session")


async def get_member_tokens(request: Request) -> MemberTokens:
    tokens: MemberTokens = request.app.state.member_tokens
    return tokens


MemberTokensDep = Annotated[MemberTokens, Depends(get_member_tokens)]


def current_member(
    engine: EngineDep,
    tokens: MemberTokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """The logged-in member's ID. A cancelled member's session ends with the membership."""
    member_id = tokens.member_id(credentials.credentials) if credentials else None
    if member_id is None or member_store.member_status(engine, member_id) in (None, "cancelled"):
        raise ApiError(ErrorCode.MEMBER_SESSION_INVALID)
    return member_id


MemberDep = Annotated[int, Depends(current_member)]


async def member_service(
    client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> MemberService:
    return MemberService(client, engine, settings)


MemberServiceDep = Annotated[MemberService, Depends(member_service)]


@router.post(
    "/session",
    response_model=MemberLoginResponse,
    responses=error_responses(ErrorCode.LOGIN_FAILED, ErrorCode.LOGIN_THROTTLED),
)
async def log_in(
    body: MemberLoginRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    tokens: MemberTokensDep,
) -> MemberLoginResponse:
    """Log in to マイページ with the registered e-mail and the password set at STEP4.

    A wrong address, a wrong password and a cancelled membership get the same answer, in
    the same time. Throttled as the circle log-in is: repeated failures lock the address
    typed, and the client address, for a while (429 with ``Retry-After``).
    """
    guard = LoginGuard.of(request, settings, "member-login", body.email.strip().lower())
    await guard.refuse_if_locked()
    found = await asyncio.to_thread(member_store.member_for_login, engine, body.email)
    verified = await verify_password_async(found[1] if found else None, body.password)
    if found is None or not verified:
        await guard.failed()
        raise ApiError(ErrorCode.LOGIN_FAILED)
    await guard.succeeded()
    return MemberLoginResponse(access_token=tokens.issue(found[0]))


@router.get(
    "", response_model=MemberView, responses=error_responses(ErrorCode.MEMBER_SESSION_INVALID)
)
def show_member(member_id: MemberDep, engine: EngineDep) -> MemberView:
    """照会: gateway, PCS serial, since when, the documents agreed to (and their versions,
    from the consent ledger), status (``suspended`` while the gateway's circle application
    is cancelled), and a pending change of e-mail."""
    record = member_store.member_record(engine, member_id)
    if record is None:
        raise ApiError(ErrorCode.MEMBER_SESSION_INVALID)
    return MemberView(
        email=record.email,
        name=record.name,
        gateway_id=record.gateway_id,
        pcs_serial=record.pcs_serial,
        status=record.status,
        registered_at=record.registered_at,
        circle_cancelled_at=record.circle_cancelled_at,
        documents=[
            AgreedDocumentView(document=d.document, version=d.version, agreed_at=d.agreed_at)
            for d in record.documents
        ],
        email_change_expires_at=record.email_change_expires_at,
    )


@router.post(
    "/email",
    response_model=EmailChangeRequested,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        ErrorCode.MEMBER_SESSION_INVALID,
        ErrorCode.EMAIL_UNCHANGED,
        ErrorCode.MEMBER_CANCELLED,
        ErrorCode.INVALID_EMAIL,
        ErrorCode.WORKER_UNAVAILABLE,
    ),
)
async def request_email_change(
    body: EmailChangeBody,
    member_id: MemberDep,
    service: MemberServiceDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
) -> EmailChangeRequested:
    """メールアドレスの変更: a confirmation link, valid ``ECOKATSU_SIGNUP_LINK_TTL``, is mailed to
    the new address; a newer request kills the older link. The answer is the same whether
    the address is free or already a member's (that one gets a neutral mail)."""
    await service.request_email_change(member_id, body.new_email, key)
    hours = int(settings.signup.link_ttl.total_seconds() // 3600)
    return EmailChangeRequested(
        message=f"新しいメールアドレスに確認のメールをお送りしました。{hours}時間以内に、"
        "メールに記載のURLから変更を完了してください。"
    )


@router.post(
    "/email/confirm",
    response_model=EmailChangeDone,
    responses=error_responses(
        ErrorCode.EMAIL_CHANGE_UNKNOWN,
        ErrorCode.EMAIL_CHANGE_EXPIRED,
        ErrorCode.EMAIL_CHANGE_REPLACED,
        ErrorCode.EMAIL_CHANGE_USED,
        ErrorCode.EMAIL_CHANGE_UNAVAILABLE,
        ErrorCode.MEMBER_CANCELLED,
        ErrorCode.WORKER_UNAVAILABLE,
    ),
)
async def confirm_email_change(
    body: LinkToken, service: MemberServiceDep, key: IdempotencyKeyDep
) -> EmailChangeDone:
    """The page the mailed link opens posts its token (from after ``#``): the address
    changes, once. The old address is told."""
    changed = await service.confirm_email_change(body.token, key)
    return EmailChangeDone(changed_at=changed.changed_at)


@router.post(
    "/cancellation",
    response_model=MemberCancelled,
    responses=error_responses(
        ErrorCode.MEMBER_SESSION_INVALID,
        ErrorCode.LOGIN_FAILED,
        ErrorCode.MEMBER_CANCELLED,
        ErrorCode.WORKER_UNAVAILABLE,
    ),
)
async def cancel_membership(
    body: MemberCancelBody,
    member_id: MemberDep,
    engine: EngineDep,
    service: MemberServiceDep,
    key: IdempotencyKeyDep,
) -> MemberCancelled:
    """退会 (解約 of the スマイルeポイント membership), with the password asked again: it
    cannot be undone. The member's e-mail and gateway can never sign up again."""
    record = await asyncio.to_thread(member_store.member_record, engine, member_id)
    found = (
        await asyncio.to_thread(member_store.member_for_login, engine, record.email)
        if record
        else None
    )
    ok = await verify_password_async(found[1] if found else None, body.password)
    if not ok:
        raise ApiError(ErrorCode.LOGIN_FAILED)
    cancelled = await service.cancel(member_id, key)
    return MemberCancelled(
        cancelled_at=cancelled.cancelled_at,
        message="スマイルeポイントの退会手続きが完了しました。退会後の再登録はできません。",
    )


@system_router.get(
    "/points-members/suspended",
    response_model=list[SuspendedMemberRow],
    responses=error_responses(ErrorCode.SYSTEM_KEY_INVALID),
)
def suspended_members(_: SystemDep, engine: EngineDep) -> list[SuspendedMemberRow]:
    """The operators' list of スマイルeポイント members whose gateway's circle application
    was cancelled (解約): suspended, oldest first. Header ``X-System-Key``."""
    return [
        SuspendedMemberRow(member_ref=ref, gateway_id=gw, circle_cancelled_at=at)
        for ref, gw, at in member_store.suspended_members(engine)
    ]
