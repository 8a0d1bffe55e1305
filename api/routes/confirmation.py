"""Knowing the two IDs is not enough: the circle account holder confirms (or declines) a
points signup on their gateway whose e-mail is not the account's own.

Two ways in: the mailed link (its token after ``#``, posted in a body; opening it spends
nothing, because mail scanners open links, and only the POST of 承認する or 承認しない
decides), or the logged-in circle session. The signup's side can ask again after an
unanswered request expired. The decision itself is the signup workflow's
(``decide_holder``); the store answers who may decide and whether the request is still
open.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import AccountDep, ClientDep, EngineDep, SettingsDep, SignupServiceDep, SignupStepDep
from api.errors import ApiError, error_responses
from api.routes.signup import SESSION_ERRORS
from api.services import holder as holder_service
from domain.errors import ErrorCode, message_for
from domain.holder import HolderState
from store import holder as holder_store
from store.holder import ConfirmationFacts

router = APIRouter(prefix="/v1", tags=["holder confirmation"])

DECIDE_ERRORS = (
    ErrorCode.CONFIRMATION_UNKNOWN,
    ErrorCode.CONFIRMATION_EXPIRED,
    ErrorCode.CONFIRMATION_REPLACED,
    ErrorCode.CONFIRMATION_USED,
    ErrorCode.WORKER_UNAVAILABLE,
)


class ConfirmationToken(BaseModel):
    token: str = Field(
        min_length=20, max_length=200, description="The part after # in the mailed link"
    )


class ConfirmationRequest(BaseModel):
    """A request as the holder sees it: the signup's address masked (t***@example.com)."""

    confirmation_id: str
    gateway_id: str
    email: str = Field(description="The signup's address, masked")
    requested_at: datetime
    expires_at: datetime


class ConfirmationPage(BaseModel):
    """What the mailed link opens: ``valid`` with the request, or why it cannot be
    answered any more (each state with its message)."""

    state: Literal[
        "valid", "confirmation_unknown", "confirmation_expired", "confirmation_replaced",
        "confirmation_used",
    ]  # fmt: skip
    message: str
    request: ConfirmationRequest | None = None


class ConfirmationList(BaseModel):
    confirmations: list[ConfirmationRequest]


def _public(facts: ConfirmationFacts) -> ConfirmationRequest:
    return ConfirmationRequest(
        confirmation_id=facts.confirmation_id,
        gateway_id=facts.gateway_id,
        email=facts.masked_email,
        requested_at=facts.requested_at,
        expires_at=facts.expires_at,
    )


async def _by_token(engine: EngineDep, body: ConfirmationToken) -> ConfirmationFacts:
    facts = await asyncio.to_thread(holder_store.confirmation_for_token, engine, body.token)
    if facts is None:
        raise ApiError(ErrorCode.CONFIRMATION_UNKNOWN)
    return facts


@router.post(
    "/holder-confirmation",
    response_model=ConfirmationPage,
    responses=error_responses(),
)
async def open_confirmation(body: ConfirmationToken, engine: EngineDep) -> ConfirmationPage:
    """The page the holder's mailed link opens: which gateway, which address (masked),
    until when. Spends nothing (mail scanners open links)."""
    facts = await asyncio.to_thread(holder_store.confirmation_for_token, engine, body.token)
    refused = ErrorCode.CONFIRMATION_UNKNOWN if facts is None else facts.refusal(datetime.now(UTC))
    if facts is None or refused is not None:
        code = refused or ErrorCode.CONFIRMATION_UNKNOWN
        return ConfirmationPage(state=code.value, message=message_for(code))
    return ConfirmationPage(state="valid", message="", request=_public(facts))


@router.post(
    "/holder-confirmation/confirm",
    response_model=HolderState,
    responses=error_responses(*DECIDE_ERRORS),
)
async def confirm_by_link(
    body: ConfirmationToken, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> HolderState:
    """承認する: the signup may register. Single use."""
    facts = await _by_token(engine, body)
    return await holder_service.decide(client, settings, facts, True, "mail_link")


@router.post(
    "/holder-confirmation/decline",
    response_model=HolderState,
    responses=error_responses(*DECIDE_ERRORS),
)
async def decline_by_link(
    body: ConfirmationToken, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> HolderState:
    """承認しない: the signup ends; its address is told neutrally. Single use."""
    facts = await _by_token(engine, body)
    return await holder_service.decide(client, settings, facts, False, "mail_link")


@router.get(
    "/journey/confirmations",
    response_model=ConfirmationList,
    responses=error_responses(ErrorCode.NOT_AUTHENTICATED),
)
async def list_confirmations(account: AccountDep, engine: EngineDep) -> ConfirmationList:
    """The points signups on the logged-in account's gateways that wait for its answer."""
    pending = await asyncio.to_thread(
        holder_store.pending_for_account, engine, account.id, datetime.now(UTC)
    )
    return ConfirmationList(confirmations=[_public(f) for f in pending])


async def _own(engine: EngineDep, account_id: str, confirmation_id: str) -> ConfirmationFacts:
    facts = await asyncio.to_thread(holder_store.confirmation_by_id, engine, confirmation_id)
    if facts is None or facts.account_id != account_id:
        raise ApiError(ErrorCode.CONFIRMATION_UNKNOWN)
    return facts


@router.post(
    "/journey/confirmations/{confirmation_id}/confirm",
    response_model=HolderState,
    responses=error_responses(ErrorCode.NOT_AUTHENTICATED, *DECIDE_ERRORS),
)
async def confirm_in_session(
    account: AccountDep,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    confirmation_id: str = Path(max_length=32, description="From GET /v1/journey/confirmations"),
) -> HolderState:
    """承認する, logged in to the circle account that owns the gateway."""
    facts = await _own(engine, account.id, confirmation_id)
    return await holder_service.decide(client, settings, facts, True, "circle_session")


@router.post(
    "/journey/confirmations/{confirmation_id}/decline",
    response_model=HolderState,
    responses=error_responses(ErrorCode.NOT_AUTHENTICATED, *DECIDE_ERRORS),
)
async def decline_in_session(
    account: AccountDep,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    confirmation_id: str = Path(max_length=32, description="From GET /v1/journey/confirmations"),
) -> HolderState:
    """承認しない, logged in to the circle account that owns the gateway."""
    facts = await _own(engine, account.id, confirmation_id)
    return await holder_service.decide(client, settings, facts, False, "circle_session")


@router.post(
    "/points/signup/holder-confirmation",
    response_model=HolderState,
    responses=error_responses(
        *SESSION_ERRORS,
        ErrorCode.SIGNUP_INCOMPLETE,
        ErrorCode.SIGNUP_LOCKED,
        ErrorCode.HOLDER_CONFIRMATION_PENDING,
        ErrorCode.HOLDER_ASK_LIMIT,
        ErrorCode.HOLDER_DECLINED,
    ),
)
async def ask_holder_again(step: SignupStepDep, signups: SignupServiceDep) -> HolderState:
    """From STEP5: ask the circle account holder again after the last request expired
    unanswered (a new mail with a new link; the old link dies)."""
    return await signups.ask_holder_again(step)
