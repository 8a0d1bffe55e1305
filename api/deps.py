"""Typed dependencies: settings, store, Temporal client, the caller's identity, the
signup session, and the request's idempotency key."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.errors import ApiError
from api.security import OperatorSessions, SessionTokens, SignupSessions
from api.services.signup import SignupService, SignupStep
from config import Settings
from domain.errors import ErrorCode
from store import audit, journey_status, operators
from store.operators import Role
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


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_client(request: Request) -> Client:
    temporal: TemporalConnection = request.app.state.temporal
    return await temporal.get()


async def get_temporal(request: Request) -> TemporalConnection:
    """The connection itself, for a route that needs Temporal only on one path."""
    temporal: TemporalConnection = request.app.state.temporal
    return temporal


async def get_tokens(request: Request) -> SessionTokens:
    tokens: SessionTokens = request.app.state.tokens
    return tokens


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClientDep = Annotated[Client, Depends(get_client)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]
TokensDep = Annotated[SessionTokens, Depends(get_tokens)]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/session")


@dataclass(frozen=True)
class SignedIn:
    """The caller a bearer token names. ``AccountDep`` and ``EnrolledDep`` have checked
    that the account still exists; ``TokenAccountDep`` leaves that to the route's one
    statement."""

    id: str


def _token_account_id(
    tokens: SessionTokens, credentials: HTTPAuthorizationCredentials | None
) -> str:
    account_id = tokens.account_id(credentials.credentials) if credentials else None
    if not account_id:
        raise ApiError(ErrorCode.NOT_AUTHENTICATED)
    return account_id


def _account(
    engine: Engine,
    tokens: SessionTokens,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    started: bool,
) -> SignedIn:
    """The token's account, if it still exists (``started``: and its journey has been
    started, else 404): one statement on one pooled connection, in one thread-pool hop."""
    account_id = _token_account_id(tokens, credentials)
    journey = journey_status.signed_in(engine, account_id)
    if journey is None:
        raise ApiError(ErrorCode.NOT_AUTHENTICATED)
    if started and not journey:
        raise ApiError(ErrorCode.JOURNEY_NOT_FOUND)
    return SignedIn(account_id)


def current_account(
    engine: EngineDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SignedIn:
    """The logged-in account. A sync dependency: FastAPI runs it in its thread pool, and
    its connection goes back to the pool before the route awaits Temporal."""
    return _account(engine, tokens, credentials, started=False)


async def system_caller(
    settings: SettingsDep,
    x_system_key: Annotated[str | None, Header(description="The monitoring system's key")] = None,
) -> None:
    expected = settings.system_api_key.get_secret_value().encode()
    if x_system_key is None or not hmac.compare_digest(x_system_key.encode(), expected):
        raise ApiError(ErrorCode.SYSTEM_KEY_INVALID)


AccountDep = Annotated[SignedIn, Depends(current_account)]


def enrolled_account(
    engine: EngineDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SignedIn:
    """The logged-in account whose journey has been started (else 404)."""
    return _account(engine, tokens, credentials, started=True)


EnrolledDep = Annotated[SignedIn, Depends(enrolled_account)]


async def token_account(
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SignedIn:
    """The account the bearer token names, not yet checked against the store: only for
    routes whose one store read checks that the account still exists (the status and the
    gateways; 申込確定 and 解約, whose read also counts the gateway's applications). Such a
    route answers 422 for a bad body or path before it learns that the account is gone."""
    return SignedIn(_token_account_id(tokens, credentials))


TokenAccountDep = Annotated[SignedIn, Depends(token_account)]
SystemDep = Annotated[None, Depends(system_caller)]


async def idempotency_key(
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


async def current_signup_step(
    request: Request,
    x_signup_session: Annotated[str | None, Header(description="From POST /begin")] = None,
) -> SignupStep:
    sessions: SignupSessions = request.app.state.signup_sessions
    found = sessions.read(x_signup_session) if x_signup_session else None
    if found is None:
        raise ApiError(ErrorCode.SESSION_INVALID)
    signup_id, seq = found
    return SignupStep(signup_id, seq)


async def get_signup_sessions(request: Request) -> SignupSessions:
    sessions: SignupSessions = request.app.state.signup_sessions
    return sessions


async def signup_service(
    client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> SignupService:
    return SignupService(client, engine, settings)


SignupStepDep = Annotated[SignupStep, Depends(current_signup_step)]
SignupServiceDep = Annotated[SignupService, Depends(signup_service)]
SignupSessionsDep = Annotated[SignupSessions, Depends(get_signup_sessions)]


# --- Operators: people with their own credentials (store/operators.py) -------------------


@dataclass(frozen=True)
class OperatorIdentity:
    """The operator behind a request: their name goes into the audit of what they do."""

    name: str
    role: Role


def request_action(request: Request) -> str:
    """The audit's action for a request: method and route template, e.g.
    ``POST /v1/operator/journeys/{workflow_id}/resend`` (no IDs or query values)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def refuse_operator(
    request: Request, engine: Engine, name: str, code: ErrorCode, reason: str
) -> ApiError:
    """Audit a refusal of an operator request, and the error to raise for it."""
    audit.record(
        engine,
        operator=name,
        action=request_action(request),
        outcome=code.value,
        reason=reason,
        workflow_id=request.path_params.get("workflow_id"),
    )
    return ApiError(code)


def _presented_credential(
    request: Request, engine: Engine
) -> tuple[str, operators.Credential | None, str]:
    """(name as presented, what it resolves to, why not). Three forms, all in
    ``Authorization``: ``Bearer <personal token>``, ``Bearer <session from a password
    login>``, and ``Basic <name:personal token>`` (what a browser sends behind the
    deployment's sign-in proxy, deploy/nginx.conf)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value.startswith(operators.TOKEN_PREFIX):
        found = operators.by_token(engine, value)
        return (found.name if found else ""), found, "unknown or revoked token"
    if scheme.lower() == "bearer" and value:
        sessions: OperatorSessions = request.app.state.operator_sessions
        name = sessions.name(value)
        if name is None:
            return "", None, "invalid or expired session"
        return name, operators.by_name(engine, name), "session of an unknown operator"
    if scheme.lower() == "basic" and value:
        try:
            name, _, token = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", None, "malformed basic credentials"
        found = (
            operators.by_token(engine, token) if token.startswith(operators.TOKEN_PREFIX) else None
        )
        if found is None or not hmac.compare_digest(found.name.encode(), name.encode()):
            return name[:64], None, "unknown name or token"
        return name, found, ""
    return "", None, "no operator credentials"


def authenticate_operator(request: Request, engine: EngineDep) -> OperatorIdentity:
    """Who the operator is, or 401/403 (audited). Sync: runs in the thread pool."""
    name, found, why = _presented_credential(request, engine)
    if found is None:
        raise refuse_operator(request, engine, name, ErrorCode.OPERATOR_UNAUTHENTICATED, why)
    if found.disabled:
        raise refuse_operator(
            request, engine, found.name, ErrorCode.OPERATOR_DISABLED, "operator disabled"
        )
    return OperatorIdentity(found.name, found.role)


def require_role(needed: Role) -> Callable[..., OperatorIdentity]:
    """A dependency that admits operators whose role allows ``needed`` and audits the
    refusal of everyone else. Use the aliases below in a route's signature::

        @router.post("/journeys/{workflow_id}/cancel")
        async def cancel(workflow_id: str, caller: OperatorDep, engine: EngineDep, ...):
            ...  # act, then audit.record(engine, operator=caller.name, outcome="ok", ...)
    """

    def dependency(
        request: Request,
        engine: EngineDep,
        caller: Annotated[OperatorIdentity, Depends(authenticate_operator)],
    ) -> OperatorIdentity:
        if not caller.role.allows(needed):
            raise refuse_operator(
                request,
                engine,
                caller.name,
                ErrorCode.OPERATOR_ROLE_INSUFFICIENT,
                f"role {caller.role.value} lacks {needed.value}",
            )
        return caller

    return dependency


ViewerDep = Annotated[OperatorIdentity, Depends(require_role(Role.VIEWER))]
"""Any enabled operator (viewer or operator): reading."""
OperatorDep = Annotated[OperatorIdentity, Depends(require_role(Role.OPERATOR))]
"""An enabled operator with the ``operator`` role: acting on journeys and signups."""
