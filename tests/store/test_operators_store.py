"""Operator accounts, personal tokens (stored as hashes) and the audit, on both databases."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store import audit, operators
from store.operators import Role
from store.tables import OperatorToken


def test_tokens_are_stored_as_hashes_and_die_with_the_operator(store_engine: Engine) -> None:
    operators.add(store_engine, "alice", Role.OPERATOR)
    token = operators.issue_token(store_engine, "alice", "laptop")
    assert token.startswith(operators.TOKEN_PREFIX)
    with Session(store_engine) as session:
        [row] = session.exec(select(OperatorToken)).all()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.model_dump_json()
    found = operators.by_token(store_engine, token)
    assert found is not None and (found.name, found.role, found.disabled) == (
        "alice",
        Role.OPERATOR,
        False,
    )
    assert operators.by_token(store_engine, token + "x") is None
    operators.disable(store_engine, "alice")
    found = operators.by_token(store_engine, token)
    assert found is not None and found.disabled  # resolved, so the refusal can name her
    assert operators.revoke_tokens(store_engine, "alice") == 1
    assert operators.by_token(store_engine, token) is None


def test_names_are_unique_and_listed(store_engine: Engine) -> None:
    operators.add(store_engine, "bob", Role.VIEWER, password_hash="$argon2id$x")
    with pytest.raises(operators.OperatorExists):
        operators.add(store_engine, "bob", Role.OPERATOR)
    operators.add(store_engine, "alice", Role.OPERATOR)
    operators.issue_token(store_engine, "alice")
    views = operators.list_operators(store_engine)
    assert [(v.name, v.role, v.has_password, v.tokens) for v in views] == [
        ("alice", Role.OPERATOR, False, 1),
        ("bob", Role.VIEWER, True, 0),
    ]
    with pytest.raises(operators.OperatorNotFound):
        operators.issue_token(store_engine, "nobody")


def test_roles() -> None:
    assert Role.OPERATOR.allows(Role.VIEWER) and Role.OPERATOR.allows(Role.OPERATOR)
    assert Role.VIEWER.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.OPERATOR)


def test_audit_records_and_lists_newest_first(store_engine: Engine) -> None:
    audit.record(
        store_engine,
        operator="alice",
        action="cancel",
        outcome=audit.OK,
        reason="customer asked by phone",
        workflow_id="enrollment-abc",
        stage_before="awaiting_consent",
        stage_after="declined",
    )
    audit.record(
        store_engine, operator="bob", action="cancel", outcome="operator_role_insufficient"
    )
    entries = audit.list(store_engine)
    assert [(e.operator, e.outcome) for e in entries] == [
        ("bob", "operator_role_insufficient"),
        ("alice", "ok"),
    ]
    [alice] = audit.list(store_engine, workflow_id="enrollment-abc")
    assert (alice.stage_before, alice.stage_after, alice.reason) == (
        "awaiting_consent",
        "declined",
        "customer asked by phone",
    )
    assert alice.at.tzinfo is not None
    assert [e.operator for e in audit.list(store_engine, refused_only=True)] == ["bob"]
