"""The outbox of journey starts (table ``journey_starts``).

An announced account and the promise to start its journey are committed together, so a
Temporal server that is down when the monitoring system announces an account can delay the
journey but never lose it. Whoever starts a pending journey (the API at once, or the
reconciler in a worker later) first *claims* the row: one conditional UPDATE that sets a
lease, which exactly one of several concurrent claimants wins on SQLite and PostgreSQL
alike. The lease only keeps claimants from doing the same work twice; correctness does not
rest on it, because starting a journey that exists already is a no-op (the workflow-ID
policies in ``journey_starts.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from domain.errors import ErrorCode
from store.enrollment import RuleViolation, create_account
from store.tables import Account, Enrollment, Gateway, JourneyStart

PENDING = "pending"
STARTED = "started"


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; we store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Announced:
    """An announcement as the store holds it after ``record_announcement``."""

    account_id: str
    created: bool  # False: the same announcement had been recorded before
    started: bool  # the journey has been started already
    claimed: bool  # this caller holds the lease and should try the start now


def _same_gateways(stored: list[Gateway], announced: list[Gateway]) -> bool:
    def key(g: Gateway) -> tuple[str, str, str, bool, bool]:
        return (g.gateway_id, g.pcs_serial, g.model, g.pv_unit_in_use, g.battery_unit_in_use)

    return sorted(map(key, stored)) == sorted(map(key, announced))


def record_announcement(
    engine: Engine,
    account: Account,
    gateways: list[Gateway],
    *,
    now: datetime,
    lease: timedelta,
    same_password: Callable[[str], bool],
) -> Announced:
    """Record an announced account and its pending journey start, in one transaction.

    The same announcement again (same e-mail, display name, holder type, gateways and
    password; ``same_password`` checks the stored hash) is not a conflict: it is the
    monitoring system retrying, and it gets the recorded account back, with a pending start
    if none was recorded (an account created before this outbox existed). A different
    announcement for a recorded e-mail raises ``RuleViolation(ACCOUNT_EXISTS)``.
    """
    try:
        created = create_account(
            engine,
            account,
            gateways,
            start=JourneyStart(account_id="", status=PENDING, attempts=1, lease_until=now + lease),
        )
        return Announced(account_id=created.id, created=True, started=False, claimed=True)
    except RuleViolation as err:
        if err.code != ErrorCode.ACCOUNT_EXISTS:
            raise
    with Session(engine) as session:
        stored = session.exec(select(Account).where(Account.email == account.email)).first()
        if stored is None:  # the e-mail was taken by a row that is gone again: a conflict
            raise RuleViolation(ErrorCode.ACCOUNT_EXISTS)
        stored_gateways = list(
            session.exec(select(Gateway).where(Gateway.account_id == stored.id)).all()
        )
        account_id, stored_hash = stored.id, stored.password_hash
        same_data = (stored.display_name, stored.holder_type) == (
            account.display_name,
            account.holder_type,
        ) and _same_gateways(stored_gateways, gateways)
    # The password check costs an argon2 hash: done with no connection held.
    if not (same_data and same_password(stored_hash)):
        raise RuleViolation(ErrorCode.ACCOUNT_EXISTS)
    start = ensure_start(engine, account_id)
    claimed = start.status == PENDING and claim(engine, account_id, now=now, lease=lease)
    return Announced(
        account_id=account_id, created=False, started=start.status == STARTED, claimed=claimed
    )


def ensure_start(engine: Engine, account_id: str) -> JourneyStart:
    """The account's start row, recording a pending one if it has none."""
    with Session(engine) as session:
        row = session.get(JourneyStart, account_id)
        if row is None:
            started = session.get(Enrollment, account_id) is not None
            session.add(JourneyStart(account_id=account_id, status=STARTED if started else PENDING))
            try:
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()  # a concurrent retry recorded it first
            row = session.exec(
                select(JourneyStart).where(JourneyStart.account_id == account_id)
            ).one()
        session.expunge(row)
        return row


def claim(engine: Engine, account_id: str, *, now: datetime, lease: timedelta) -> bool:
    """Take the lease on a pending start whose lease is free; True for exactly one caller.

    A single conditional UPDATE: on PostgreSQL a concurrent claimant blocks on the row and
    re-checks the condition after the winner commits; SQLite serialises writers.
    """
    with Session(engine) as session:
        result = session.execute(
            sa.update(JourneyStart)
            .where(
                col(JourneyStart.account_id) == account_id,
                col(JourneyStart.status) == PENDING,
                sa.or_(
                    col(JourneyStart.lease_until).is_(None), col(JourneyStart.lease_until) <= now
                ),
            )
            .values(lease_until=now + lease, attempts=col(JourneyStart.attempts) + 1)
        )
        session.commit()
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def claim_due(engine: Engine, *, now: datetime, lease: timedelta, limit: int) -> list[str]:
    """Claim up to ``limit`` pending starts whose lease is free, oldest first."""
    with Session(engine) as session:
        candidates = session.exec(
            select(JourneyStart.account_id)
            .where(
                JourneyStart.status == PENDING,
                sa.or_(
                    col(JourneyStart.lease_until).is_(None), col(JourneyStart.lease_until) <= now
                ),
            )
            .order_by(col(JourneyStart.created_at))
            .limit(limit)
        ).all()
    return [a for a in candidates if claim(engine, a, now=now, lease=lease)]


def mark_started(engine: Engine, account_id: str, workflow_id: str, *, now: datetime) -> None:
    """The journey runs (or ran): close the start and map the account to its workflow."""
    for attempt in (1, 2):
        with Session(engine) as session:
            row = session.get(JourneyStart, account_id)
            if row is not None and row.status != STARTED:
                row.status = STARTED
                row.started_at = now
                row.lease_until = None
                session.add(row)
            if session.get(Enrollment, account_id) is None:
                session.add(Enrollment(account_id=account_id, workflow_id=workflow_id))
            try:
                session.commit()
                return
            except sa.exc.IntegrityError:
                # A concurrent starter mapped the account first: once more, with its row.
                session.rollback()
                if attempt == 2:
                    raise


def release(
    engine: Engine, account_id: str, *, retry_at: datetime, error: str | None = None
) -> None:
    """Free the lease at ``retry_at``; after a failed attempt, note the kind of failure."""
    values: dict[str, object] = {"lease_until": retry_at}
    if error is not None:
        values["last_error"] = error[:80]
    with Session(engine) as session:
        session.execute(
            sa.update(JourneyStart)
            .where(col(JourneyStart.account_id) == account_id, col(JourneyStart.status) == PENDING)
            .values(**values)
        )
        session.commit()


def get_start(engine: Engine, account_id: str) -> JourneyStart | None:
    with Session(engine) as session:
        row = session.get(JourneyStart, account_id)
        if row is None:
            return None
        session.expunge(row)
    if row.lease_until is not None:
        row.lease_until = _utc(row.lease_until)
    return row


def pending_starts(engine: Engine) -> list[JourneyStart]:
    """Every start not yet done, oldest first (for operators and tests)."""
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(JourneyStart)
                .where(JourneyStart.status == PENDING)
                .order_by(col(JourneyStart.created_at))
            ).all()
        )
        for row in rows:
            session.expunge(row)
        return rows
