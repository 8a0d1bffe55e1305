"""Typed dependencies: settings, store session, Temporal client, the caller's identity."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.errors import ApiError
from api.security import SessionTokens
from config import Settings
from domain.errors import ErrorCode
from store.tables import Account, Enrollment


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


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


AccountDep = Annotated[Account, Depends(current_account)]


def enrolled_account(account: AccountDep, engine: EngineDep) -> Account:
    """The logged-in account whose journey has been started (else 404)."""
    with Session(engine) as session:
        if session.get(Enrollment, account.id) is None:
            raise ApiError(ErrorCode.JOURNEY_NOT_FOUND)
    return account


EnrolledDep = Annotated[Account, Depends(enrolled_account)]
SystemDep = Annotated[None, Depends(system_caller)]
