"""Rate limits and lockouts kept in the store, so every API instance shares them.

Two uses: login failures (per account and per client address; reaching the limit locks
the key for a while, and a locked key is refused before any password is hashed) and
mail-sending requests (per address and per client address; over the limit is refused
until the window ends). The durable per-signup limits (a resend cooldown and a daily cap)
are the workflow's; these stop floods early.

What is counted (an e-mail address, an IP address) is personal data: the store keeps only
an HMAC of it under the server's secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

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


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
