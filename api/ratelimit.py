"""Rate limits and lockouts kept in the store, so every API instance shares them.

Two uses: login failures (the customers', the members' and the operators' logins, per
name typed and per client address; reaching the limit locks the key for a while, and a
locked key is refused before any password is hashed) and mail-sending requests (per
address and per client address; over the limit is refused until the window ends). The
durable per-signup limits (a resend cooldown and a daily cap) are the workflow's; these
stop floods early.

What is counted (an e-mail address, an IP address) is personal data: the store keeps only
an HMAC of it under the server's secret key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy.engine import Engine

from api.errors import ApiError
from config import Settings
from domain.errors import ErrorCode
from store import throttle

PURGE_EVERY = 500  # calls between two purges of finished counters (per process)


@dataclass(frozen=True)
class Limit:
    count: int
    window: timedelta
    # How long a key stays locked once it reaches ``count`` (logins); None: refused only
    # until its window ends (request limits).
    lockout: timedelta | None = None


class StoreLimiter:
    def __init__(self, engine: Engine, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._secret = secret.encode()
        self._clock = clock
        self._calls = itertools.count(1)

    def _key(self, name: str) -> str:
        return hmac.new(self._secret, name.encode(), hashlib.sha256).hexdigest()

    def _now(self) -> int:
        now = int(self._clock())
        if next(self._calls) % PURGE_EVERY == 0:
            throttle.purge(self._engine, now)
        return now

    def locked_for(self, *names: str) -> int | None:
        """Seconds until every one of ``names`` is unlocked; None when none is locked."""
        now = self._now()
        until = throttle.blocked_until(self._engine, [self._key(n) for n in names], now)
        return until - now if until is not None else None

    def fail(self, limit: Limit, name: str) -> None:
        """Count a failure; reaching the limit locks ``name`` for ``limit.lockout``."""
        now = self._now()
        key = self._key(name)
        counted = throttle.count(self._engine, key, now, _seconds(limit.window))
        if counted.count >= limit.count:
            lockout = limit.lockout if limit.lockout is not None else limit.window
            throttle.block(self._engine, key, now + _seconds(lockout))

    def forget(self, name: str) -> None:
        throttle.clear(self._engine, self._key(name))

    def take(self, limit: Limit, *names: str) -> int | None:
        """Count one request under every name; the seconds to wait when any is over."""
        now = self._now()
        window = _seconds(limit.window)
        waits = []
        for name in names:
            counted = throttle.count(self._engine, self._key(name), now, window)
            if counted.count > limit.count:
                waits.append(counted.window_start + window - now)
        return max(1, max(waits)) if waits else None


@dataclass(frozen=True)
class LoginGuard:
    """The lockout of one password login (a customer's, a member's, an operator's; each
    kind with counters of its own): failures are counted per name typed (the same for an
    unknown name) and per client address, and either reaching its limit locks it for a
    while; a locked one is refused (429 with ``Retry-After``) before any password is
    hashed, even the right one."""

    limiter: StoreLimiter
    name_key: str
    client_key: str
    per_name: Limit
    per_client: Limit

    @classmethod
    def of(cls, request: Request, settings: Settings, kind: str, name: str) -> LoginGuard:
        window, lockout = settings.login_failure_window, settings.login_lockout
        client = request.client.host if request.client else "unknown"
        return cls(
            limiter=request.app.state.limiter,
            name_key=f"{kind}-account:{name}",
            client_key=f"{kind}-client:{client}",
            per_name=Limit(settings.login_failures_per_account, window, lockout),
            per_client=Limit(settings.login_failures_per_client, window, lockout),
        )

    async def refuse_if_locked(self) -> None:
        wait = await asyncio.to_thread(self.limiter.locked_for, self.name_key, self.client_key)
        if wait is not None:
            raise ApiError(ErrorCode.LOGIN_THROTTLED, retry_after=wait)

    async def failed(self) -> None:
        def count() -> None:
            self.limiter.fail(self.per_name, self.name_key)
            self.limiter.fail(self.per_client, self.client_key)

        await asyncio.to_thread(count)

    async def succeeded(self) -> None:
        """The name's own earlier typos are forgiven (the client's are not)."""
        await asyncio.to_thread(self.limiter.forget, self.name_key)


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
