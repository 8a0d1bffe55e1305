"""Typed dependencies: settings, store session, Temporal client, the caller's identity."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
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
from store.tables import Account


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


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
ClientDep = Annotated[Client, Depends(get_client)]
TokensDep = Annotated[SessionTokens, Depends(get_tokens)]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/session")


def current_account(
    session: SessionDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    account_id = tokens.account_id(credentials.credentials) if credentials else None
    account = session.get(Account, account_id) if account_id else None
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
SystemDep = Annotated[None, Depends(system_caller)]
