"""Security headers on every response, and the API docs under a strict CSP.

Every answer may carry a token or personal data, so nothing is cached (``no-store``),
sniffed, framed or referred. JSON gets a CSP that allows nothing; the one HTML page
(``/docs``, Swagger UI) gets its own CSP that allows exactly its CDN files and its one
inline script (by hash). HSTS is sent when the request came over TLS: directly, or
through a proxy that says so in ``X-Forwarded-Proto`` (or always, with ``ECOKATSU_HSTS``).
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=63072000; includeSubDomains"
FIXED = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
# Set unless the route chose its own (the docs page sets its CSP).
DEFAULTS = {b"cache-control": b"no-store", b"content-security-policy": STRICT_CSP.encode()}
SWAGGER_CDN = "https://cdn.jsdelivr.net"
SWAGGER_ICON_HOST = "https://fastapi.tiangolo.com"


class SecurityHeaders:
    """A pure ASGI middleware (no body buffering; streaming answers pass untouched)."""

    def __init__(self, app: ASGIApp, always_hsts: bool = False) -> None:
        self.app = app
        self.always_hsts = always_hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope.get("headers") or [])
        forwarded = request_headers.get(b"x-forwarded-proto", b"").split(b",")[0].strip()
        tls = self.always_hsts or scope.get("scheme") == "https" or forwarded.lower() == b"https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in FIXED]
                present = {k.lower() for k, _ in headers}
                headers += list(FIXED.items())
                headers += [(k, v) for k, v in DEFAULTS.items() if k not in present]
                if tls:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _inline_script_hashes(html: str) -> list[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]


def add_docs(app: FastAPI, openapi_url: str) -> None:
    """``/docs``: Swagger UI, with a CSP that admits only what the page needs."""
    page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - docs")
    html = bytes(page.body).decode()
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {SWAGGER_CDN} {' '.join(_inline_script_hashes(html))}",
            # Swagger UI sets style attributes from script; styles cannot run code.
            f"style-src {SWAGGER_CDN} 'unsafe-inline'",
            f"img-src 'self' data: {SWAGGER_ICON_HOST}",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})
