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
from sqlalchemy.engine import Engine

from domain.enrollment import EnrollmentStatus, PublishStatusInput
from store.engine import dialect_insert
from store.tables import Account, Enrollment, JourneyStatusRow

_T = JourneyStatusRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PublishedStatus:
    run_id: str
    status: EnrollmentStatus


@dataclass(frozen=True)
class CallerJourney:
    """A signed-in caller's journey as the store knows it (``read_for_caller``)."""

    started: bool  # its ``enrollments`` row exists
    published: PublishedStatus | None


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


_READ = sa.select(_T.c.run_id, _T.c.status).where(_T.c.account_id == sa.bindparam("account_id"))


def _published(row: Any) -> PublishedStatus | None:
    if row is None or row.status is None:
        return None
    return PublishedStatus(
        run_id=row.run_id, status=EnrollmentStatus.model_validate_json(row.status)
    )


def read(engine: Engine, account_id: str) -> PublishedStatus | None:
    """The account's published status; None when it has none."""
    with engine.connect() as conn:
        return _published(conn.execute(_READ, {"account_id": account_id}).first())


_A = Account.__table__  # type: ignore[attr-defined]
_E = Enrollment.__table__  # type: ignore[attr-defined]

# Built once (each call binds its account): the API asks this on every signed-in request.
_SIGNED_IN = sa.select(
    _A.c.id, sa.exists().where(_E.c.account_id == _A.c.id).label("started")
).where(_A.c.id == sa.bindparam("account_id"))


def signed_in(engine: Engine, account_id: str) -> bool | None:
    """For the API's check of a signed-in caller, one statement: ``None`` when the account
    does not exist (any more), else whether its journey was ever started."""
    with engine.connect() as conn:
        row = conn.execute(_SIGNED_IN, {"account_id": account_id}).first()
    return None if row is None else bool(row.started)


_CALLER = (
    sa.select(
        sa.exists().where(_E.c.account_id == _A.c.id).label("started"),
        _T.c.run_id,
        _T.c.status,
    )
    .select_from(_A.outerjoin(_T, _T.c.account_id == _A.c.id))
    .where(_A.c.id == sa.bindparam("account_id"))
)


def read_for_caller(engine: Engine, account_id: str) -> CallerJourney | None:
    """``GET /v1/journey``'s one read: ``None`` when the account does not exist (any
    more), else whether its journey was started and the status it last published."""
    with engine.connect() as conn:
        row = conn.execute(_CALLER, {"account_id": account_id}).first()
    if row is None:
        return None
    return CallerJourney(started=bool(row.started), published=_published(row))
