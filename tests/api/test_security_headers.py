"""Security headers on every response; /docs under a CSP that still lets it work."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest

from api.main import create_app
from config import Settings
from tests.api.conftest import Stack

EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def plain_client(**settings: Any) -> httpx.AsyncClient:
    """The app without its lifespan: enough for routes that need no store or Temporal."""
    app = create_app(Settings(env="development", **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def assert_secure(response: httpx.Response) -> None:
    for name, value in EVERYWHERE.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "content-security-policy" in response.headers


async def test_every_kind_of_answer_carries_them(stack: Stack) -> None:
    from tests.factories import add_customer

    customer = add_customer(stack.engine)
    answers = [
        await stack.call("GET", "/healthz"),
        await stack.call("GET", "/openapi.json"),
        await stack.call("GET", "/nowhere"),
        await stack.call("DELETE", "/v1/session"),
        await stack.call("POST", "/v1/session", json={}),
        await stack.call("GET", "/v1/journey"),
        await stack.call(
            "POST",
            "/v1/session",
            json={"user_id": customer.email, "password": "Test-Password-123"},
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 405, 422, 401, 200]
    for answer in answers:
        assert_secure(answer)
        assert "strict-transport-security" not in answer.headers  # plain HTTP
    token_answer = answers[-1]
    assert "access_token" in token_answer.json()
    assert token_answer.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("settings", "headers", "hsts"),
    [
        ({}, {"X-Forwarded-Proto": "https"}, True),
        ({}, {"X-Forwarded-Proto": "http"}, False),
        ({"hsts": True}, {}, True),
    ],
)
async def test_hsts_when_served_over_tls(
    settings: dict[str, Any], headers: dict[str, str], hsts: bool
) -> None:
    async with plain_client(**settings) as http:
        answer = await http.get("/healthz", headers=headers)
    assert ("strict-transport-security" in answer.headers) is hsts
    if hsts:
        assert "max-age=" in answer.headers["strict-transport-security"]


async def test_the_docs_page_works_under_its_csp() -> None:
    async with plain_client() as http:
        page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_secure(page)
    csp = {
        name: value
        for name, _, value in (
            part.partition(" ") for part in page.headers["content-security-policy"].split("; ")
        )
    }
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    scripts = csp["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    # Every inline script runs (its hash is allowed) and every external file is allowed.
    for inline in re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in scripts
    for src in re.findall(r'<script src="([^"]+)"', page.text):
        assert any(src.startswith(allowed) for allowed in scripts if allowed.startswith("https"))
    for href in re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', page.text):
        assert any(href.startswith(a) for a in csp["style-src"].split() if a.startswith("https"))
    assert "'self'" in csp["connect-src"]  # it fetches /openapi.json


async def test_the_docs_and_schema_can_be_turned_off() -> None:
    async with plain_client(api_docs=False) as http:
        for path in ("/docs", "/openapi.json", "/redoc"):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert_secure(answer)
