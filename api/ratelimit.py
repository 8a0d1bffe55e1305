"""A sliding-window limit on mail-sending requests, per address and per client address.

In-process: each API instance counts its own requests. The durable limits (a resend
cooldown and a daily cap per signup) are the workflow's; this one stops floods early.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self._limit = limit
        self._window = window_seconds
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, *keys: str) -> bool:
        """Count one request under every key; False when any key is over its limit."""
        now = time.monotonic()
        for key in keys:
            hits = self._hits[key]
            while hits and now - hits[0] > self._window:
                hits.popleft()
        if any(len(self._hits[key]) >= self._limit for key in keys):
            return False
        for key in keys:
            self._hits[key].append(now)
        return True
