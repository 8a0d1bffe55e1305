"""Operator accounts and their credentials (tables ``operators``, ``operator_tokens``).

Operators are people, each with a name, a role and their own credentials: an argon2id
password (hashed by the caller, ``api/security.hash_password``) and/or personal API
tokens. A token is 256 random bits shown once by ``cli.py operator token``; only its
SHA-256 is stored, and a request's token is found by that hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.tables import Operator, OperatorToken

TOKEN_PREFIX = "ekop_"  # noqa: S105  recognisable in a leaked-secret scan; not a secret itself


class Role(StrEnum):
    VIEWER = "viewer"  # lists, details, decrypted payloads in the UI
    OPERATOR = "operator"  # also acts on journeys and signups

    def allows(self, needed: Role) -> bool:
        """An operator may do whatever a viewer may."""
        return needed == Role.VIEWER or self == Role.OPERATOR


@dataclass(frozen=True)
class OperatorView:
    name: str
    role: Role
    disabled: bool
    has_password: bool
    tokens: int
    created_at: datetime


class OperatorExists(Exception):
    pass


class OperatorNotFound(Exception):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(engine: Engine, name: str, role: Role, password_hash: str | None = None) -> None:
    with Session(engine) as session:
        session.add(
            Operator(name=name, role=role.value, password_hash=password_hash, created_at=_now())
        )
        try:
            session.commit()
        except IntegrityError:
            raise OperatorExists(name) from None


def _get(session: Session, name: str) -> Operator:
    found = session.exec(select(Operator).where(Operator.name == name)).first()
    if found is None:
        raise OperatorNotFound(name)
    return found


def set_password(engine: Engine, name: str, password_hash: str) -> None:
    with Session(engine) as session:
        _get(session, name).password_hash = password_hash
        session.commit()


def set_role(engine: Engine, name: str, role: Role) -> None:
    with Session(engine) as session:
        _get(session, name).role = role.value
        session.commit()


def disable(engine: Engine, name: str) -> None:
    """Refuse every credential of this operator from now on (the row stays for the audit)."""
    with Session(engine) as session:
        operator = _get(session, name)
        if operator.disabled_at is None:
            operator.disabled_at = _now()
        session.commit()


def issue_token(engine: Engine, name: str, label: str = "") -> str:
    """A new personal token for ``name``: returned once, stored as its hash only."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as session:
        operator = _get(session, name)
        session.add(
            OperatorToken(
                operator_id=operator.id or 0,
                token_sha256=token_hash(token),
                label=label,
                created_at=_now(),
            )
        )
        session.commit()
    return token


def revoke_tokens(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        operator = _get(session, name)
        rows = session.exec(
            select(OperatorToken).where(
                OperatorToken.operator_id == operator.id, col(OperatorToken.revoked_at).is_(None)
            )
        ).all()
        for row in rows:
            row.revoked_at = _now()
        session.commit()
        return len(rows)


@dataclass(frozen=True)
class Credential:
    """What a presented credential resolves to: the operator (even a disabled one, so the
    refusal can name them) or nothing."""

    name: str
    role: Role
    disabled: bool
    password_hash: str | None = None


def by_token(engine: Engine, token: str) -> Credential | None:
    with Session(engine) as session:
        row = session.exec(
            select(Operator)
            .join(OperatorToken, col(OperatorToken.operator_id) == col(Operator.id))
            .where(
                OperatorToken.token_sha256 == token_hash(token),
                col(OperatorToken.revoked_at).is_(None),
            )
        ).first()
        return _credential(row) if row else None


def by_name(engine: Engine, name: str) -> Credential | None:
    with Session(engine) as session:
        row = session.exec(select(Operator).where(Operator.name == name)).first()
        return _credential(row) if row else None


def list_operators(engine: Engine) -> list[OperatorView]:
    with Session(engine) as session:
        views = []
        for operator in session.exec(select(Operator).order_by(col(Operator.name))).all():
            tokens = session.exec(
                select(OperatorToken).where(
                    OperatorToken.operator_id == operator.id,
                    col(OperatorToken.revoked_at).is_(None),
                )
            ).all()
            views.append(
                OperatorView(
                    name=operator.name,
                    role=Role(operator.role),
                    disabled=operator.disabled_at is not None,
                    has_password=operator.password_hash is not None,
                    tokens=len(tokens),
                    created_at=operator.created_at,
                )
            )
        return views


def _credential(row: Operator) -> Credential:
    return Credential(
        name=row.name,
        role=Role(row.role),
        disabled=row.disabled_at is not None,
        password_hash=row.password_hash,
    )


def _now() -> datetime:
    return datetime.now(UTC)
