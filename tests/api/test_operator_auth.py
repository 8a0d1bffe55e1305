"""Operators are people: their own tokens or passwords, two roles, every refusal audited;
the codec server accepts their credentials and audits its use."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from api.deps import OperatorDep
from api.main import create_app
from api.security import hash_password
from devtools.mailsink import MailSink
from store import audit, operators
from store.engine import make_engine
from store.operators import Role
from tests.api.conftest import settings_for
from tests.api.test_codec_server import sealed


@asynccontextmanager
async def operator_api(
    env: WorkflowEnvironment, url: str, sink: MailSink, **over: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings_for(url, sink, **over), client=env.client, engine=make_engine(url))

    # An action route as the operator routes declare them: OperatorDep admits the role
    # "operator" only (and audits whoever it refuses).
    @app.post("/v1/operator/journeys/{workflow_id}/test-action")
    def act(workflow_id: str, caller: OperatorDep) -> dict[str, str]:
        return {"by": caller.name, "role": caller.role.value, "workflow_id": workflow_id}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield app, http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_tokens_roles_and_refusals_are_audited(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    engine = make_engine(sqlite_url)
    operators.add(engine, "alice", Role.OPERATOR)
    operators.add(engine, "vera", Role.VIEWER)
    alice, vera = operators.issue_token(engine, "alice"), operators.issue_token(engine, "vera")
    async with operator_api(dev_env, sqlite_url, mail_sink) as (_, http):
        me = await http.get("/v1/operator/me", headers=bearer(alice))
        assert me.json() == {"name": "alice", "role": "operator"}
        assert (await http.get("/v1/operator/me", headers=bearer(vera))).json()["role"] == "viewer"
        action = "/v1/operator/journeys/enrollment-x1/test-action"
        done = await http.post(action, headers=bearer(alice))
        assert done.json() == {"by": "alice", "role": "operator", "workflow_id": "enrollment-x1"}

        refused = await http.post(action, headers=bearer(vera))
        assert refused.status_code == 403
        assert refused.json()["detail"][0]["code"] == "operator_role_insufficient"
        wrong = await http.get("/v1/operator/me", headers=bearer(operators.TOKEN_PREFIX + "nope"))
        assert (wrong.status_code, wrong.json()["detail"][0]["code"]) == (
            401,
            "operator_unauthenticated",
        )
        # the monitoring system's key is not an operator's identity
        system = await http.get("/v1/operator/me", headers={"X-System-Key": "test-system-key"})
        assert system.status_code == 401
        operators.disable(engine, "alice")
        gone = await http.post(action, headers=bearer(alice))
        assert (gone.status_code, gone.json()["detail"][0]["code"]) == (403, "operator_disabled")

    refusals = [
        (e.operator, e.action, e.outcome, e.workflow_id)
        for e in reversed(audit.list(engine, refused_only=True))
    ]
    assert refusals == [
        (
            "vera",
            "POST /v1/operator/journeys/{workflow_id}/test-action",
            "operator_role_insufficient",
            "enrollment-x1",
        ),
        ("", "GET /v1/operator/me", "operator_unauthenticated", None),
        ("", "GET /v1/operator/me", "operator_unauthenticated", None),
        (
            "alice",
            "POST /v1/operator/journeys/{workflow_id}/test-action",
            "operator_disabled",
            "enrollment-x1",
        ),
    ]
    assert [e.reason for e in reversed(audit.list(engine, refused_only=True))][1:3] == [
        "unknown or revoked token",
        "no operator credentials",
    ]


async def test_password_login(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    engine = make_engine(sqlite_url)
    operators.add(engine, "olga", Role.VIEWER, hash_password("Operator-Pass-2026"))
    async with operator_api(dev_env, sqlite_url, mail_sink) as (_, http):
        bad = await http.post(
            "/v1/operator/session", json={"name": "olga", "password": "wrong-password"}
        )
        assert (bad.status_code, bad.json()["detail"][0]["code"]) == (
            401,
            "operator_unauthenticated",
        )
        assert "wrong-password" not in bad.text
        ok = await http.post(
            "/v1/operator/session", json={"name": "olga", "password": "Operator-Pass-2026"}
        )
        assert ok.status_code == 200
        session = ok.json()["access_token"]
        assert (await http.get("/v1/operator/me", headers=bearer(session))).json() == {
            "name": "olga",
            "role": "viewer",
        }
        # a customer's session is not an operator's
        assert (await http.get("/v1/operator/me", headers=bearer("x" + session))).status_code == 401
        operators.disable(engine, "olga")
        assert (await http.get("/v1/operator/me", headers=bearer(session))).status_code == 403
        again = await http.post(
            "/v1/operator/session", json={"name": "olga", "password": "Operator-Pass-2026"}
        )
        assert again.json()["detail"][0]["code"] == "operator_disabled"
    [login_refused, *_] = reversed(audit.list(engine, operator="olga"))
    assert (login_refused.action, login_refused.reason) == (
        "POST /v1/operator/session",
        "wrong name or password",
    )
    assert all("Operator-Pass" not in e.reason for e in audit.list(engine))


async def test_operator_login_locks_after_failures_even_for_the_right_password(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    engine = make_engine(sqlite_url)
    operators.add(engine, "otto", Role.OPERATOR, hash_password("Operator-Pass-2026"))
    limits = {"login_failures_per_account": 3, "login_failures_per_client": 100}
    async with operator_api(dev_env, sqlite_url, mail_sink, **limits) as (_, http):

        async def log_in(name: str, password: str) -> httpx.Response:
            return await http.post(
                "/v1/operator/session", json={"name": name, "password": password}
            )

        for _ in range(3):
            assert (await log_in("otto", "wrong-password")).status_code == 401
        locked = await log_in("otto", "Operator-Pass-2026")
        assert (locked.status_code, locked.json()["detail"][0]["code"]) == (
            429,
            "login_throttled",
        )
        assert int(locked.headers["Retry-After"]) > 0
        # An unknown name locks exactly like a known one.
        for _ in range(3):
            assert (await log_in("nobody", "wrong-password")).status_code == 401
        assert (await log_in("nobody", "wrong-password")).status_code == 429


async def test_codec_accepts_operator_credentials_and_audits_use(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    engine = make_engine(sqlite_url)
    operators.add(engine, "vera", Role.VIEWER)
    vera = operators.issue_token(engine, "vera")
    body = await sealed('{"name":"笑顔 太郎"}'.encode())
    basic = base64.b64encode(f"vera:{vera}".encode()).decode()
    # a codec token is configured too: both kinds of caller are admitted
    async with operator_api(dev_env, sqlite_url, mail_sink, codec_server_token="svc") as (_, http):
        for headers in (bearer(vera), {"Authorization": f"Basic {basic}"}, bearer("svc")):
            opened = await http.post(
                "/codec/decode", content=body, headers={**headers, "X-Workflow-Id": "signup-1"}
            )
            assert opened.status_code == 200, opened.text
            [payload] = json_format.Parse(opened.content, Payloads()).payloads
            assert "笑顔 太郎" in payload.data.decode()
        wrong_basic = base64.b64encode(f"alice:{vera}".encode()).decode()
        refused = await http.post(
            "/codec/decode", content=body, headers={"Authorization": f"Basic {wrong_basic}"}
        )
        assert refused.status_code == 401
        operators.disable(engine, "vera")
        assert (
            await http.post("/codec/decode", content=body, headers=bearer(vera))
        ).status_code == 403
    used = [(e.operator, e.action, e.outcome, e.workflow_id) for e in reversed(audit.list(engine))]
    assert used == [
        ("vera", "POST /codec/{operation}", "ok", "signup-1"),
        ("vera", "POST /codec/{operation}", "ok", "signup-1"),
        ("alice", "POST /codec/{operation}", "operator_unauthenticated", None),
        ("vera", "POST /codec/{operation}", "operator_disabled", None),
    ]


def test_cli_manages_operators(sqlite_url: str, monkeypatch: Any) -> None:
    from cli import app
    from config import get_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ECOKATSU_ENV", "development")  # the suite's published dev secrets
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["operator", "add", "alice", "--role", "operator"]).exit_code == 0
        assert runner.invoke(app, ["operator", "add", "alice"]).exit_code == 1
        assert runner.invoke(app, ["operator", "add", "x", "--role", "admin"]).exit_code != 0
        issued = runner.invoke(app, ["operator", "token", "alice"])
        token = issued.output.strip()
        engine = make_engine(sqlite_url)
        found = operators.by_token(engine, token)
        assert found is not None and found.role == Role.OPERATOR
        listed = runner.invoke(app, ["operator", "list"]).output
        assert "alice" in listed and "tokens 1" in listed and token not in listed
        assert runner.invoke(app, ["operator", "disable", "alice"]).exit_code == 0
        assert operators.by_token(engine, token) == found.__class__(
            name="alice", role=Role.OPERATOR, disabled=True, password_hash=None
        )
        assert runner.invoke(app, ["operator", "disable", "nobody"]).exit_code == 1
    finally:
        get_settings.cache_clear()
