"""The API's Prometheus metrics: latency by route template and responses by status.

Labels are the route *template* (``/v1/journey/applications/{gateway_id}``), never the
path, so no ID reaches a label and the series stay few; a request no route matched is
``<unmatched>``. ``GET /metrics`` serves this process's registry (prometheus_client's
default one, with its process and Python collectors) in the text format.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY = Histogram(
    "ecokatsu_http_request_duration_seconds",
    "API latency by method and route template",
    ["method", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
RESPONSES = Counter(
    "ecokatsu_http_responses",
    "API responses by method, route template and status",
    ["method", "route", "status"],
)
UNMATCHED = "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI (no buffering of bodies). The route is read from the scope after the app
    ran: FastAPI's router puts the matched route there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"]
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
            RESPONSES.labels(method, route, str(status)).inc()


def metrics_endpoint(_: Request) -> Response:
    """Prometheus text format. Unauthenticated, like most scrape targets: it carries counts
    and timings only; keep the port off the public internet (the compose file does)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
