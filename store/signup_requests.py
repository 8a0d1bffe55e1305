"""The durable queue behind ``POST /v1/points/signups``.

The route writes one row and answers at once; the row is handed to its signup workflow
after the answer. A lease (``claimed_until``, epoch seconds) says which API process is
handing a row over; when it runs out (the process died, Temporal was away) any instance's
drainer takes the row again. A row is deleted once handed over.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store.signup import SignupTicket
from store.tables import SignupRequest


def record(engine: Engine, email: str, now: int, lease: int) -> str:
    """Queue a request, leased to the caller (it hands it over right after answering)."""
    with Session(engine) as session:
        row = SignupRequest(email=email, claimed_until=now + lease)
        session.add(row)
        session.commit()
        return row.id


def due(engine: Engine, now: int, limit: int = 50) -> list[str]:
    """Requests whose lease ran out, oldest first."""
    with Session(engine) as session:
        return list(
            session.exec(
                select(SignupRequest.id)
                .where(SignupRequest.claimed_until <= now)
                .order_by(SignupRequest.requested_at)  # type: ignore[arg-type]
                .limit(limit)
            ).all()
        )


def claim(engine: Engine, request_id: str, now: int, lease: int) -> bool:
    """Take a request whose lease ran out; False when another process has it (or it is done)."""
    table = SignupRequest.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        taken = conn.execute(
            sa.update(table)
            .where(table.c.id == request_id, table.c.claimed_until <= now)
            .values(claimed_until=now + lease, attempts=table.c.attempts + 1)
        )
        return taken.rowcount == 1


def get(engine: Engine, request_id: str) -> SignupRequest | None:
    with Session(engine) as session:
        row = session.get(SignupRequest, request_id)
        if row is not None:
            session.expunge(row)
        return row


def remember_ticket(engine: Engine, request_id: str, ticket: SignupTicket | None) -> None:
    """Keep the signup a request opened, so a retried hand-over reuses it."""
    with Session(engine) as session:
        row = session.get(SignupRequest, request_id)
        if row is not None and ticket is not None:
            row.signup_id, row.already_member = ticket.signup_id, ticket.already_member
            session.add(row)
            session.commit()


def done(engine: Engine, request_id: str) -> None:
    with Session(engine) as session:
        row = session.get(SignupRequest, request_id)
        if row is not None:
            session.delete(row)
            session.commit()


def oldest(engine: Engine) -> datetime | None:
    """When the oldest request still waiting was made (for operators and tests)."""
    with Session(engine) as session:
        return session.exec(select(sa.func.min(SignupRequest.requested_at))).one()
