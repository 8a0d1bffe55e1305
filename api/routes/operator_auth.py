"""Who the operator is: a password login and ``GET /v1/operator/me``.

Operators are people with accounts made by ``cli.py operator add``; they authenticate with
a personal token (``cli.py operator token``) or a session from a password login. The
actions on journeys and signups (``/v1/operator/…``) take ``OperatorDep`` or ``ViewerDep``
from ``api/deps.py``, as ``me`` does here; every refusal is in the audit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, SettingsDep, ViewerDep, refuse_operator
from api.errors import error_responses
from api.ratelimit import LoginGuard
from api.security import OperatorSessions, verify_password_async
from domain.errors import ErrorCode
from store import operators
from store.operators import Role

router = APIRouter(prefix="/v1/operator", tags=["operators"])


class OperatorLogin(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class OperatorSession(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the scheme, not a secret)
    expires_in: int = Field(description="seconds")


class OperatorMe(BaseModel):
    name: str
    role: Role


async def _sessions(request: Request) -> OperatorSessions:
    sessions: OperatorSessions = request.app.state.operator_sessions
    return sessions


@router.post(
    "/session",
    response_model=OperatorSession,
    responses=error_responses(
        ErrorCode.OPERATOR_UNAUTHENTICATED, ErrorCode.OPERATOR_DISABLED, ErrorCode.LOGIN_THROTTLED
    ),
)
async def operator_login(
    body: OperatorLogin,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    sessions: Annotated[OperatorSessions, Depends(_sessions)],
) -> OperatorSession:
    """Log an operator in with their password; the session goes in ``Authorization:
    Bearer``. A wrong name or password is one answer, and audited. Throttled as the
    customers' login is: repeated failures lock the name typed, and the client address,
    for a while (429 with ``Retry-After``), even for the right password."""
    guard = LoginGuard.of(request, settings, "operator-login", body.name)
    await guard.refuse_if_locked()
    found = await run_in_threadpool(operators.by_name, engine, body.name)
    # verify_password against a dummy hash when there is none: the same time either way
    ok = await verify_password_async(found.password_hash if found else None, body.password)
    if found is None or not ok:
        await guard.failed()
        raise await run_in_threadpool(
            refuse_operator,
            request,
            engine,
            body.name,
            ErrorCode.OPERATOR_UNAUTHENTICATED,
            "wrong name or password",
        )
    if found.disabled:
        raise await run_in_threadpool(
            refuse_operator,
            request,
            engine,
            found.name,
            ErrorCode.OPERATOR_DISABLED,
            "operator disabled",
        )
    await guard.succeeded()
    max_age = int(settings.operator_session_max_age.total_seconds())
    return OperatorSession(access_token=sessions.issue(found.name), expires_in=max_age)


@router.get(
    "/me",
    response_model=OperatorMe,
    responses=error_responses(ErrorCode.OPERATOR_UNAUTHENTICATED, ErrorCode.OPERATOR_DISABLED),
)
def operator_me(caller: ViewerDep) -> OperatorMe:
    """The operator the credentials belong to. Also the sign-in proxy's check
    (``auth_request`` in deploy/nginx.conf) before it lets a browser reach the Temporal UI."""
    return OperatorMe(name=caller.name, role=caller.role)
