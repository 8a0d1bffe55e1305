"""The store-backed limiter, on SQLite and PostgreSQL: shared, atomic, expiring."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.ratelimit import Limit, StoreLimiter
from store import throttle
from store.tables import Throttle

LOGIN = Limit(3, timedelta(minutes=15), lockout=timedelta(minutes=10))


class Clock:
    """Time the test moves (epoch seconds), not a mock of the store."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_failures_lock_then_the_lock_runs_out(store_engine: Engine) -> None:
    clock = Clock()
    limiter = StoreLimiter(store_engine, "secret", clock)
    for _ in range(2):
        limiter.fail(LOGIN, "login-account:a@example.com")
    assert limiter.locked_for("login-account:a@example.com") is None
    limiter.fail(LOGIN, "login-account:a@example.com")
    assert limiter.locked_for("login-account:a@example.com", "other") == 600
    clock.now += 599
    assert limiter.locked_for("login-account:a@example.com") == 1
    clock.now += 1
    assert limiter.locked_for("login-account:a@example.com") is None


def test_failures_outside_the_window_start_counting_anew(store_engine: Engine) -> None:
    clock = Clock()
    limiter = StoreLimiter(store_engine, "secret", clock)
    limiter.fail(LOGIN, "k")
    limiter.fail(LOGIN, "k")
    clock.now += 15 * 60 + 1
    limiter.fail(LOGIN, "k")
    assert limiter.locked_for("k") is None


def test_two_instances_share_the_count(store_engine: Engine) -> None:
    clock = Clock()
    a, b = StoreLimiter(store_engine, "secret", clock), StoreLimiter(store_engine, "secret", clock)
    a.fail(LOGIN, "k")
    b.fail(LOGIN, "k")
    assert a.locked_for("k") is None
    a.fail(LOGIN, "k")
    assert b.locked_for("k") == 600


def test_concurrent_hits_are_all_counted(store_engine: Engine) -> None:
    limiter = StoreLimiter(store_engine, "secret", Clock())
    limit = Limit(1000, timedelta(hours=1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: limiter.take(limit, "k"), range(80)))
    [row] = throttle_rows(store_engine)
    assert row.count == 80


def test_take_refuses_over_the_limit_until_the_window_ends(store_engine: Engine) -> None:
    clock = Clock()
    limiter = StoreLimiter(store_engine, "secret", clock)
    limit = Limit(2, timedelta(hours=1))
    assert limiter.take(limit, "mail:x", "ip:1") is None
    clock.now += 100
    assert limiter.take(limit, "mail:y", "ip:1") is None
    assert limiter.take(limit, "mail:z", "ip:1") == 3600 - 100  # the client is over
    assert limiter.take(limit, "mail:w", "ip:2") is None
    clock.now += 3500
    assert limiter.take(limit, "mail:v", "ip:1") is None


def test_the_store_keeps_no_address_and_forgets_finished_counters(store_engine: Engine) -> None:
    clock = Clock()
    limiter = StoreLimiter(store_engine, "secret", clock)
    limiter.fail(LOGIN, "login-account:someone@example.com")
    limiter.fail(LOGIN, "login-client:192.0.2.7")
    keys = [row.key for row in throttle_rows(store_engine)]
    assert len(keys) == 2 and not any("example" in k or "192" in k for k in keys)
    assert throttle.purge(store_engine, int(clock.now) + 15 * 60 + 1) == 2
    assert throttle_rows(store_engine) == []


def throttle_rows(engine: Engine) -> list[Throttle]:
    with Session(engine) as session:
        return list(session.exec(select(Throttle)).all())
