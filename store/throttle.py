"""Rate-limit counters in the store, so every API instance shares them.

Each operation is one statement (an upsert with ``RETURNING``, or a plain update), so two
instances counting the same key at once never lose a count, on SQLite and PostgreSQL alike.
Times are integer epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.engine import dialect_insert
from store.tables import Throttle

_T = Throttle.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Count:
    count: int  # hits in the current window, this one included
    window_start: int
    blocked_until: int


def count(engine: Engine, key: str, now: int, window: int) -> Count:
    """Count one hit under ``key``; a window older than ``window`` seconds starts anew."""
    fresh = _T.c.window_start > now - window
    insert = dialect_insert(engine.dialect.name, _T)
    stmt = (
        insert.values(key=key, window_start=now, count=1, blocked_until=0, expires_at=now + window)
        .on_conflict_do_update(
            index_elements=[_T.c.key],
            set_={
                # Every SET expression reads the row as it was (both databases).
                "count": sa.case((fresh, _T.c.count + 1), else_=1),
                "window_start": sa.case((fresh, _T.c.window_start), else_=now),
                "expires_at": sa.func.max(now + window, _T.c.blocked_until)
                if engine.dialect.name == "sqlite"
                else sa.func.greatest(now + window, _T.c.blocked_until),
            },
        )
        .returning(_T.c.count, _T.c.window_start, _T.c.blocked_until)
    )
    with engine.begin() as conn:
        row = conn.execute(stmt).one()
    hits, window_start, blocked = row
    return Count(count=hits, window_start=window_start, blocked_until=blocked)


def block(engine: Engine, key: str, until: int) -> None:
    """Refuse ``key`` until ``until`` (never shortens a block already longer)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(_T)
            .where(_T.c.key == key, _T.c.blocked_until < until)
            .values(
                blocked_until=until,
                expires_at=sa.case((_T.c.expires_at < until, until), else_=_T.c.expires_at),
            )
        )


def blocked_until(engine: Engine, keys: list[str], now: int) -> int | None:
    """The latest block among ``keys`` still in force, if any."""
    with engine.connect() as conn:
        until = conn.execute(
            sa.select(sa.func.max(_T.c.blocked_until)).where(
                _T.c.key.in_(keys), _T.c.blocked_until > now
            )
        ).scalar()
    return int(until) if until is not None else None


def clear(engine: Engine, key: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(_T).where(_T.c.key == key))


def purge(engine: Engine, now: int) -> int:
    """Forget counters whose window and block are both over."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(_T).where(_T.c.expires_at < now)).rowcount
