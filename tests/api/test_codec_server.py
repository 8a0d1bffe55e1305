"""The codec server the Temporal UI calls to show operators decrypted payloads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from codec import AesGcmCodec
from devtools.mailsink import MailSink
from store.engine import make_engine
from tests.api.conftest import Stack, settings_for
from tests.conftest import TEST_KEYS

UI = "http://127.0.0.1:8233"


@asynccontextmanager
async def codec_api(
    env: WorkflowEnvironment, url: str, sink: MailSink, client_host: str = "127.0.0.1", **over: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(url, sink, **over), client=env.client, engine=make_engine(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http


async def sealed(text: bytes) -> str:
    [payload] = await AesGcmCodec(TEST_KEYS, "test-1").encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=text)]
    )
    return json_format.MessageToJson(Payloads(payloads=[payload]))


async def test_access_rules(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    body = await sealed('{"name":"笑顔 太郎"}'.encode())
    async with codec_api(dev_env, sqlite_url, mail_sink) as http:  # neither token nor local UI
        refused = await http.post("/codec/decode", content=body)
        assert (refused.status_code, refused.json()["detail"][0]["code"]) == (
            403,
            "codec_forbidden",
        )
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_token="op-token") as http:
        assert (
            await http.post(
                "/codec/decode", content=body, headers={"Authorization": "Bearer wrong"}
            )
        ).status_code == 403
        opened = await http.post(
            "/codec/decode", content=body, headers={"Authorization": "Bearer op-token"}
        )
        assert opened.status_code == 200
        [payload] = json_format.Parse(opened.content, Payloads()).payloads
        assert json.loads(payload.data) == {"name": "笑顔 太郎"}
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_token="") as http:
        empty = await http.post("/codec/decode", content=body, headers={"Authorization": "Bearer "})
        assert empty.status_code == 403  # an empty token configured is no token
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_local_ui=True) as http:
        assert (await http.post("/codec/decode", content=body)).status_code == 200
    async with codec_api(
        dev_env, sqlite_url, mail_sink, client_host="203.0.113.7", codec_server_local_ui=True
    ) as http:
        assert (await http.post("/codec/decode", content=body)).status_code == 403


async def test_cors_for_the_ui_only(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_local_ui=True) as http:
        ok = await http.options("/codec/decode", headers={"Origin": UI})
        assert ok.headers["access-control-allow-origin"] == UI
        other = await http.options("/codec/decode", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_operators_can_read_a_real_signup_history(stack: Stack) -> None:
    """The customer information a signup carries is ciphertext in the history and readable
    through the codec server."""
    from tests.api.test_signup_api import test_signup_from_the_mailed_link_to_enrolled

    await test_signup_from_the_mailed_link_to_enrolled(stack)
    stack.settings.codec_server_local_ui = True  # the app reads these settings per request
    signups = [
        w.id async for w in stack.client.list_workflows("WorkflowType = 'PointSignupWorkflow'")
    ]
    decoded: list[str] = []
    for wid in signups:
        for event in (await stack.client.get_workflow_handle(wid).fetch_history()).events:
            if not event.HasField("workflow_execution_update_accepted_event_attributes"):
                continue
            attrs = event.workflow_execution_update_accepted_event_attributes
            args = attrs.accepted_request.input.args
            if not args.payloads:
                continue
            assert all(p.metadata["encoding"] == b"binary/encrypted" for p in args.payloads)
            answer = await stack.http.post("/codec/decode", content=json_format.MessageToJson(args))
            assert answer.status_code == 200
            decoded += [
                p.data.decode() for p in json_format.Parse(answer.content, Payloads()).payloads
            ]
    assert any("笑顔 太郎" in text for text in decoded)
