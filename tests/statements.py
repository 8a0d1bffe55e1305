"""The SQL statements an engine runs: for tests that pin how many a store call takes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@contextmanager
def statements_of(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs meanwhile."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


@dataclass
class ForcedRace:
    """What ``other_attempt_first`` saw: the other attempt's answer, and every INSERT
    into the watched table (the winner's, then the loser's that collided)."""

    won: list[object] = field(default_factory=list)
    inserts: list[str] = field(default_factory=list)


@contextmanager
def other_attempt_first(
    engine: Engine, before: str, inserts_into: str, other: Callable[[], object]
) -> Iterator[ForcedRace]:
    """A race forced: meanwhile, just before the first statement that starts with
    ``before`` (the attempt's first write), ``other`` runs to its commit on a connection of
    its own, once (its own statements pass through)."""
    race = ForcedRace()
    started: list[bool] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(f"INSERT INTO {inserts_into}"):
            race.inserts.append(statement)
        if statement.startswith(before) and not started:
            started.append(True)
            race.won.append(other())

    sa.event.listen(engine, "before_cursor_execute", hook)
    try:
        yield race
    finally:
        sa.event.remove(engine, "before_cursor_execute", hook)
