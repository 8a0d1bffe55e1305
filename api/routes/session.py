from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import Session, select

from api.deps import EngineDep, TokensDep
from api.errors import ApiError, error_responses
from api.schemas import LoginRequest, LoginResponse
from api.security import verify_password
from domain.errors import ErrorCode
from store.tables import Account

router = APIRouter(prefix="/v1/session", tags=["session"])


@router.post("", response_model=LoginResponse, responses=error_responses(ErrorCode.LOGIN_FAILED))
def log_in(body: LoginRequest, engine: EngineDep, tokens: TokensDep) -> LoginResponse:
    """Log in with the monitoring account's user ID (e-mail) and password.

    Returns a bearer token for the journey routes. A wrong user ID and a wrong password get
    the same answer, in the same time.
    """
    with Session(engine) as session:  # released before the (slow, on purpose) hash check
        account = session.exec(
            select(Account).where(Account.email == body.user_id.strip().lower())
        ).first()
        if account is not None:
            session.expunge(account)
    # Verified even for an unknown user ID, so both answers take the same time.
    verified = verify_password(account.password_hash if account else None, body.password)
    if account is None or not verified:
        raise ApiError(ErrorCode.LOGIN_FAILED)
    return LoginResponse(access_token=tokens.issue(account.id), account_id=account.id)
