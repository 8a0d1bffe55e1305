from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.deps import EngineDep, SettingsDep, TokensDep
from api.errors import ApiError, error_responses
from api.ratelimit import LoginGuard
from api.schemas import LoginRequest, LoginResponse
from api.security import verify_password_async
from domain.errors import ErrorCode
from store.tables import Account

router = APIRouter(prefix="/v1/session", tags=["session"])


@router.post(
    "",
    response_model=LoginResponse,
    responses=error_responses(ErrorCode.LOGIN_FAILED, ErrorCode.LOGIN_THROTTLED),
)
async def log_in(
    body: LoginRequest,
    request: Request,
    engine: EngineDep,
    tokens: TokensDep,
    settings: SettingsDep,
) -> LoginResponse:
    """Log in with the monitoring account's user ID (e-mail) and password.

    Returns a bearer token for the journey routes. A wrong user ID and a wrong password get
    the same answer, in the same time. Repeated failures lock the user ID, and the client
    address, for a while (429 with ``Retry-After``): while locked even the right password
    is refused, and an unknown user ID locks exactly like a known one.
    """
    user_id = body.user_id.strip().lower()
    # Keyed by what was typed, not by the account: the same for an unknown user ID.
    guard = LoginGuard.of(request, settings, "login", user_id)
    await guard.refuse_if_locked()  # before hashing: a flood costs no argon2 time
    # Read before the (slow, on purpose) hash check, which holds no connection or thread
    # of the API's pool: it waits for the hashing pool (api/security.py).
    account = await asyncio.to_thread(_account_for, engine, user_id)
    # Verified even for an unknown user ID, so both answers take the same time.
    verified = await verify_password_async(
        account.password_hash if account else None, body.password
    )
    if account is None or not verified:
        await guard.failed()
        raise ApiError(ErrorCode.LOGIN_FAILED)
    await guard.succeeded()
    return LoginResponse(access_token=tokens.issue(account.id), account_id=account.id)


def _account_for(engine: Engine, user_id: str) -> Account | None:
    with Session(engine) as session:
        account = session.exec(select(Account).where(Account.email == user_id)).first()
        if account is not None:
            session.expunge(account)
        return account
