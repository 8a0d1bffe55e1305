"""The journey status rows (``JourneyStatusRow``): what each journey's workflow last
published, for ``GET /v1/journey`` to read without a round trip to the worker.

One statement per write, an upsert that lands only when it is newer than the row, so a
write retried after a newer one (or an older run's) never moves the status back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from domain.enrollment import EnrollmentStatus, PublishStatusInput
from store.engine import dialect_insert
from store.tables import Enrollment, JourneyStatusRow

_T = JourneyStatusRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PublishedStatus:
    run_id: str
    status: EnrollmentStatus


@functools.cache
def _upsert(dialect: str) -> Any:
    """The row's upsert, built once per dialect (each call brings its values): the
    statement and its ``excluded`` alias cost more to build than to run on SQLite."""
    insert = dialect_insert(dialect, _T)
    excluded = insert.excluded
    newer = sa.or_(
        _T.c.published_at < excluded.published_at,
        sa.and_(_T.c.published_at == excluded.published_at, _T.c.seq < excluded.seq),
    )
    return (
        insert.on_conflict_do_update(
            index_elements=[_T.c.account_id],
            set_={k: excluded[k] for k in ("run_id", "seq", "published_at", "status")},
            where=newer,
        )
        # A row comes back only when one was written (inserted, or updated because newer):
        # rowcount is not reliable for an upsert across drivers (psycopg reports none).
        .returning(_T.c.seq)
    )


def publish(engine: Engine, inp: PublishStatusInput) -> bool:
    """Write the status if it is newer than the row's; whether it was written."""
    values = {
        "account_id": inp.account_id,
        "run_id": inp.run_id,
        "seq": inp.seq,
        "published_at": inp.published_at,
        "status": inp.status.model_dump_json(),
    }
    with engine.begin() as conn:
        return conn.execute(_upsert(engine.dialect.name), values).first() is not None


def read(engine: Engine, account_id: str) -> PublishedStatus | None:
    """The account's published status; None when it has none."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(_T.c.run_id, _T.c.status).where(_T.c.account_id == account_id)
        ).first()
    if row is None:
        return None
    return PublishedStatus(
        run_id=row.run_id, status=EnrollmentStatus.model_validate_json(row.status)
    )


def journey_started(engine: Engine, account_id: str) -> bool:
    """Whether the account's journey was ever started (its ``enrollments`` row)."""
    with engine.connect() as conn:
        return started_in(conn, account_id)


def started_in(conn: Connection | Session, account_id: str) -> bool:
    """``journey_started`` within a connection or session the caller has open already
    (the API's account check reads the account and this in one session)."""
    found = conn.execute(
        sa.select(Enrollment.account_id).where(  # type: ignore[call-overload]
            Enrollment.account_id == account_id
        )
    ).first()
    return found is not None
