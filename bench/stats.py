"""Latency samples, percentiles and the little runners every part of the bench uses."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


def percentile(values: Iterable[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0..1) of ``values``; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Sample:
    """One timed call: when it was sent (monotonic seconds) and how long it took."""

    sent: float
    seconds: float


@dataclass
class Steps:
    """Timed calls by step name, in the order the steps were first seen."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, step: str, sent: float, seconds: float) -> None:
        self.samples.setdefault(step, []).append(Sample(sent, seconds))

    def extend(self, other: Steps) -> None:
        """Add ``other``'s calls (another block of the same steps)."""
        for step, samples in other.samples.items():
            self.samples.setdefault(step, []).extend(samples)

    def seconds(self, step: str, within: tuple[float, float] | None = None) -> list[float]:
        found = self.samples.get(step, [])
        if within is not None:
            start, end = within
            found = [s for s in found if start <= s.sent < end]
        return [s.seconds for s in found]

    def all_seconds(self, within: tuple[float, float] | None = None) -> list[float]:
        return [v for step in self.samples for v in self.seconds(step, within)]

    def p(self, step: str, p: float) -> float:
        return percentile(self.seconds(step), p)

    def merge(self, other: Steps) -> None:
        for step, samples in other.samples.items():
            self.samples.setdefault(step, []).extend(samples)


async def timed(steps: Steps, step: str, call: Awaitable[T]) -> T:
    """Await ``call``, recording its latency under ``step``."""
    sent = time.perf_counter()
    result = await call
    steps.add(step, sent, time.perf_counter() - sent)
    return result


async def run_pool(concurrency: int, items: list[T], each: Callable[[T], Awaitable[None]]) -> float:
    """Run ``each`` over ``items`` with at most ``concurrency`` at once (a closed loop: a
    runner takes the next item as soon as its last one finished); the wall time taken."""
    queue = list(reversed(items))

    async def runner() -> None:
        while queue:
            await each(queue.pop())

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(min(concurrency, len(items))):
            tasks.create_task(runner())
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    """A latency for the tables: "12.3 ms", "1.20 s"; "-" for none."""
    if math.isnan(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.1f} ms"
