"""The codec server the Temporal UI calls to show operators decrypted payloads."""

from __future__ import annotations

import base64
import copy
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
        # make run's address: in local UI mode only loopback names are served.
        base = "http://127.0.0.1:8000"
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
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
            answer = await stack.http.post(
                "/codec/decode",
                content=json_format.MessageToJson(args),
                headers={"Host": "127.0.0.1:8000"},
            )
            assert answer.status_code == 200
            decoded += [
                p.data.decode() for p in json_format.Parse(answer.content, Payloads()).payloads
            ]
    assert any("笑顔 太郎" in text for text in decoded)


async def test_local_ui_mode_refuses_other_host_names(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, so the client is loopback, but
    the browser says which name it used."""
    body = await sealed(b'{"name":"x"}')
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_local_ui=True) as http:
        for host in ("evil.example:8000", "127.0.0.1.evil.example", "api", ""):
            refused = await http.post("/codec/decode", content=body, headers={"Host": host})
            assert refused.status_code == 403, host
            assert refused.json()["detail"][0]["code"] == "codec_forbidden"
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
            ok = await http.post("/codec/decode", content=body, headers={"Host": host})
            assert ok.status_code == 200, host
        from_ui = await http.post("/codec/decode", content=body, headers={"Origin": UI})
        assert from_ui.status_code == 200
        other_page = {"Origin": "http://evil.example:8000"}
        assert (
            await http.post("/codec/decode", content=body, headers=other_page)
        ).status_code == 403
    # The UI's own host (docker-compose: the UI and the API at localhost) is accepted.
    ui = ["http://ops.internal:8080"]
    async with codec_api(
        dev_env, sqlite_url, mail_sink, codec_server_local_ui=True, codec_cors_origins=ui
    ) as http:
        ok = await http.post("/codec/decode", content=body, headers={"Host": "ops.internal:8000"})
        assert ok.status_code == 200


async def test_malformed_payloads_are_422_in_the_standard_shape(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    good = json.loads(await sealed(b'{"name":"x"}'))
    sealed_data = base64.b64decode(good["payloads"][0]["data"])
    tampered = copy.deepcopy(good)
    tampered["payloads"][0]["data"] = base64.b64encode(
        sealed_data[:-1] + bytes([sealed_data[-1] ^ 1])
    ).decode()
    unknown_key = copy.deepcopy(good)
    unknown_key["payloads"][0]["metadata"]["encryption-key-id"] = base64.b64encode(b"gone").decode()
    no_key_id = copy.deepcopy(good)
    del no_key_id["payloads"][0]["metadata"]["encryption-key-id"]
    bad_base64 = copy.deepcopy(good)
    bad_base64["payloads"][0]["data"] = "not base64 at all!"
    short = copy.deepcopy(good)
    short["payloads"][0]["data"] = base64.b64encode(b"tiny").decode()
    bodies = [
        b"{not json",
        b"\xff\xfe",
        json.dumps({"payloads": "nope"}).encode(),
        json.dumps(tampered).encode(),
        json.dumps(unknown_key).encode(),
        json.dumps(no_key_id).encode(),
        json.dumps(bad_base64).encode(),
        json.dumps(short).encode(),
    ]
    async with codec_api(dev_env, sqlite_url, mail_sink, codec_server_local_ui=True) as http:
        for i, content in enumerate(bodies):
            for operation in ("decode", "encode"):
                answer = await http.post(f"/codec/{operation}", content=content)
                if operation == "encode" and answer.status_code == 200:
                    continue  # a well-formed Payloads message can always be sealed
                assert answer.status_code == 422, (i, operation, answer.text)
                [item] = answer.json()["detail"]
                assert (item["loc"], item["code"]) == (["body"], "codec_payload_invalid")
