"""An HTTP client that retries as a real one would, and records every answer it got.

A request that gets 503, a connection error or a timeout is sent again with the same
``Idempotency-Key`` (so the API can attach the retry to the first attempt), with backoff,
until its time budget runs out. 429 waits for ``Retry-After``. Any other answer is final
for that request: the journey decides what to do next, as a customer would on the screen.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

RETRIED_STATUSES = (503,)


@dataclass
class Exchange:
    """One attempt of one request."""

    at: float  # seconds since the scenario's start
    journey: int
    step: str
    method: str
    path: str
    attempt: int
    key: str | None
    status: int | None  # None: no HTTP answer (see ``error``)
    error: str | None = None  # ConnectError, ReadTimeout, …
    code: str | None = None  # the error body's first code
    elapsed: float = 0.0
    excerpt: str = ""  # the start of a 5xx body, for the evidence

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else f"no answer ({self.error})"


@dataclass
class Answer:
    status: int | None  # None: the budget ran out without an answer
    body: Any
    code: str | None
    attempts: list[Exchange]

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retried_after_doubt(self) -> bool:
        """An earlier attempt may have been carried out without us hearing back."""
        return any(a.status in RETRIED_STATUSES or a.status is None for a in self.attempts[:-1])


@dataclass
class RecordingClient:
    base_url: str
    clock: float
    exchanges: list[Exchange] = field(default_factory=list)
    _http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> RecordingClient:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            # The API answers within its 5 s workflow timeout; 20 s without an answer is a hang.
            timeout=httpx.Timeout(20.0, connect=5.0),
            # Below uvicorn's 5 s keep-alive, so that a pooled connection is never reused
            # just as the server closes it (a ReadError that no fault caused).
            limits=httpx.Limits(
                max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0
            ),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    def dump(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for e in self.exchanges:
                out.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")

    def now(self) -> float:
        return round(time.monotonic() - self.clock, 2)

    async def call(
        self,
        journey: int,
        step: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        budget: float = 60.0,
    ) -> Answer:
        assert self._http is not None
        key = str(uuid.uuid4()) if method != "GET" else None
        sent_headers = dict(headers or {})
        if key is not None:
            sent_headers["Idempotency-Key"] = key
        deadline = time.monotonic() + budget
        attempts: list[Exchange] = []
        backoff = 0.5
        while True:
            started = time.monotonic()
            exchange = Exchange(
                self.now(), journey, step, method, path, len(attempts) + 1, key, None
            )
            response: httpx.Response | None = None
            try:
                response = await self._http.request(method, path, json=json, headers=sent_headers)
            except httpx.TransportError as exc:  # connect, read, protocol errors, timeouts
                exchange.error = type(exc).__name__
            exchange.elapsed = round(time.monotonic() - started, 2)
            body: Any = None
            if response is not None:
                exchange.status = response.status_code
                body = _json(response)
                exchange.code = _code(body)
                if response.status_code >= 500:
                    exchange.excerpt = response.text[:200]
            attempts.append(exchange)
            self.exchanges.append(exchange)
            status = exchange.status
            wait: float | None = None
            if status is None or status in RETRIED_STATUSES:
                wait, backoff = backoff, min(backoff * 2, 4.0)
                if exchange.error == "ReadTimeout":
                    # The server may still be working on it (uvicorn does not cancel a
                    # handler whose client left): do not pile retries onto it.
                    wait = max(wait, 5.0)
            elif status == 429 and response is not None:
                wait = min(_retry_after(response), 10.0)
            if wait is None:
                return Answer(status, body, exchange.code, attempts)
            if time.monotonic() + wait > deadline:
                return Answer(None, body, exchange.code, attempts)
            await asyncio.sleep(wait)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _code(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and body["detail"]:
        first = body["detail"][0]
        if isinstance(first, dict):
            code = first.get("code")
            return str(code) if code is not None else None
    return None


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "2")), 0.5)
    except ValueError:
        return 2.0
