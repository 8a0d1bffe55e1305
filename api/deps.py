"""Typed dependencies: settings, store, Temporal client, the caller's identity, the
signup session, and the request's idempotency key."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.errors import ApiError
from api.security import SessionTokens, SignupSessions
from api.services.operators import Operator
from api.services.signup import SignupService, SignupStep
from config import Settings
from domain.errors import ErrorCode
from store.tables import Account, Enrollment
from temporal_client import connect

log = logging.getLogger(__name__)


class TemporalConnection:
    """The process's one Temporal client, connected on first need.

    The API starts while the Temporal server is unreachable: routes that need it answer
    503 ``service_unavailable`` and the next request tries again (at most one attempt a
    second, each bounded by ``temporal_connect_timeout``). Once connected, the SDK
    reconnects by itself; an outage then surfaces as ``RPCError`` UNAVAILABLE (503).
    """

    RETRY_GAP_SECONDS = 1.0

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()
        self._failed_at = -self.RETRY_GAP_SECONDS

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                if time.monotonic() - self._failed_at < self.RETRY_GAP_SECONDS:
                    raise ApiError(ErrorCode.SERVICE_UNAVAILABLE)
                timeout = self._settings.temporal_connect_timeout.total_seconds()
                try:
                    async with asyncio.timeout(timeout):
                        self._client = await connect(self._settings)
                except (RuntimeError, TimeoutError, OSError) as err:
                    self._failed_at = time.monotonic()
                    log.warning("Temporal server unreachable: %s", type(err).__name__)
                    raise ApiError(ErrorCode.SERVICE_UNAVAILABLE) from None
            return self._client


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_client(request: Request) -> Client:
    temporal: TemporalConnection = request.app.state.temporal
    return await temporal.get()


def get_tokens(request: Request) -> SessionTokens:
    tokens: SessionTokens = request.app.state.tokens
    return tokens


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClientDep = Annotated[Client, Depends(get_client)]
TokensDep = Annotated[SessionTokens, Depends(get_tokens)]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/session")


def current_account(
    engine: EngineDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    """The logged-in account, detached. A sync dependency: FastAPI runs it in its thread
    pool, and its short session holds no connection while the route awaits Temporal."""
    account_id = tokens.account_id(credentials.credentials) if credentials else None
    account = None
    if account_id:
        with Session(engine) as session:
            account = session.get(Account, account_id)
            if account is not None:
                session.expunge(account)
    if account is None:
        raise ApiError(ErrorCode.NOT_AUTHENTICATED)
    return account


def system_caller(
    settings: SettingsDep,
    x_system_key: Annotated[str | None, Header(description="The monitoring system's key")] = None,
) -> None:
    expected = settings.system_api_key.get_secret_value().encode()
    if x_system_key is None or not hmac.compare_digest(x_system_key.encode(), expected):
        raise ApiError(ErrorCode.SYSTEM_KEY_INVALID)


def current_operator(
    settings: SettingsDep,
    x_system_key: Annotated[str | None, Header(description="The monitoring system's key")] = None,
) -> Operator:
    """Who acts on /v1/operator. Stand-in until operator accounts exist: the system key is
    an operator named ``system`` with the ``operator`` role. Replace this function (same
    return type) to accept operators' own credentials; routes and audit stay as they are."""
    system_caller(settings, x_system_key)
    return Operator(name="system", role="operator")


OperatorDep = Annotated[Operator, Depends(current_operator)]
AccountDep = Annotated[Account, Depends(current_account)]


def enrolled_account(account: AccountDep, engine: EngineDep) -> Account:
    """The logged-in account whose journey has been started (else 404)."""
    with Session(engine) as session:
        if session.get(Enrollment, account.id) is None:
            raise ApiError(ErrorCode.JOURNEY_NOT_FOUND)
    return account


EnrolledDep = Annotated[Account, Depends(enrolled_account)]
SystemDep = Annotated[None, Depends(system_caller)]


def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description=(
                "Any unique string (e.g. a UUID) the client sends again when it retries this "
                "request: the retry gets the first attempt's result, never a second action."
            ),
        ),
    ] = None,
) -> str | None:
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]


def current_signup_step(
    request: Request,
    x_signup_session: Annotated[str | None, Header(description="From POST /begin")] = None,
) -> SignupStep:
    sessions: SignupSessions = request.app.state.signup_sessions
    found = sessions.read(x_signup_session) if x_signup_session else None
    if found is None:
        raise ApiError(ErrorCode.SESSION_INVALID)
    signup_id, seq = found
    return SignupStep(signup_id, seq)


def get_signup_sessions(request: Request) -> SignupSessions:
    sessions: SignupSessions = request.app.state.signup_sessions
    return sessions


async def signup_service(
    client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> SignupService:
    return SignupService(client, engine, settings)


SignupStepDep = Annotated[SignupStep, Depends(current_signup_step)]
SignupServiceDep = Annotated[SignupService, Depends(signup_service)]
SignupSessionsDep = Annotated[SignupSessions, Depends(get_signup_sessions)]
