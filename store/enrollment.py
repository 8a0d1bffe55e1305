"""Store operations shared by activities, the API and the CLI.

Each write is one transaction and is idempotent by its request key: an activity retried
after its first attempt committed gets the first attempt's result back.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from domain.enrollment import (
    ApplicationState,
    CancelApplicationInput,
    EligibilityResult,
    GatewayReason,
    GatewayView,
    IneligibleReason,
    RecordApplicationInput,
    RecordConsentInput,
    RecordedApplication,
    gateway_ineligibility,
)
from domain.errors import ErrorCode
from domain.terms import TermsDocument
from store.engine import dialect_insert
from store.tables import (
    Account,
    CircleApplication,
    Consent,
    Gateway,
    JourneyStart,
    PointsMember,
)

_CONSENTS = Consent.__table__  # type: ignore[attr-defined]


class RuleViolation(Exception):
    """A domain rule refused the operation; ``code`` is an ``ErrorCode``."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.value)
        self.code = code


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes even for timezone-aware columns; we store UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def consent_row(
    key: str,
    account_id: str,
    terms: TermsDocument,
    decision: str,
    decided_at: datetime,
    channel: str,
) -> Consent:
    """One line of the consent ledger (the circle's terms, or a signup's documents)."""
    return Consent(
        request_key=key,
        account_id=account_id,
        document=terms.document,
        version=terms.version,
        content_sha256=terms.content_sha256,
        decision=decision,
        decided_at=decided_at,
        channel=channel,
    )


def gateway_views(session: Session, account_id: str) -> list[GatewayView]:
    """The account's gateways with eligibility and the latest application of each."""
    gateways = session.exec(
        select(Gateway).where(Gateway.account_id == account_id).order_by(col(Gateway.gateway_id))
    ).all()
    latest: dict[str, CircleApplication] = {}
    for application in session.exec(
        select(CircleApplication)
        .where(CircleApplication.account_id == account_id)
        .order_by(col(CircleApplication.id))
    ):
        latest[application.gateway_id] = application
    views = []
    for gw in gateways:
        reasons = gateway_ineligibility(gw.model, gw.pv_unit_in_use, gw.battery_unit_in_use)
        if gw.removed_at is not None:
            reasons = [GatewayReason.GATEWAY_REMOVED]
        app = latest.get(gw.gateway_id)
        views.append(
            GatewayView(
                gateway_id=gw.gateway_id,
                pcs_serial=gw.pcs_serial,
                model=gw.model,
                eligible=not reasons,
                reasons=reasons,
                application=ApplicationState(app.status) if app else ApplicationState.NONE,
                applied_at=as_utc(app.applied_at) if app else None,
                cancelled_at=as_utc(app.cancelled_at) if app and app.cancelled_at else None,
            )
        )
    return views


def check_eligibility(engine: Engine, account_id: str) -> EligibilityResult:
    with Session(engine) as session:
        account = session.get(Account, account_id)
        if account is None:
            return EligibilityResult(eligible=False, reason=IneligibleReason.ACCOUNT_NOT_FOUND)
        views = gateway_views(session, account_id)
    if account.holder_type != "individual":
        reason: IneligibleReason | None = IneligibleReason.CORPORATE_ACCOUNT
    elif not any(v.eligible for v in views):
        reason = IneligibleReason.NO_ELIGIBLE_GATEWAY
    else:
        reason = None
    return EligibilityResult(eligible=reason is None, reason=reason, gateways=views)


@functools.cache
def _consent_insert(dialect: str) -> Any:
    """The ledger's insert, built once per dialect (each call brings its values)."""
    insert = dialect_insert(dialect, _CONSENTS)
    return insert.on_conflict_do_nothing(index_elements=[_CONSENTS.c.request_key])


def record_consent(engine: Engine, inp: RecordConsentInput) -> None:
    """One line of the consent ledger, once per request key: a retry of the same request
    (its line committed already, or committing now) inserts nothing. One statement and no
    ORM object: the customer's update waits for it (README, Benchmarks)."""
    row = consent_row(inp.key, inp.account_id, inp.terms, inp.decision, inp.decided_at, inp.channel)
    with engine.begin() as conn:
        conn.execute(_consent_insert(engine.dialect.name), row.model_dump(exclude={"id"}))


def _recorded(session: Session, app: CircleApplication, pcs_serial: str) -> RecordedApplication:
    member = session.exec(
        select(PointsMember)
        .where(PointsMember.account_id == app.account_id, PointsMember.status == "active")
        .order_by(col(PointsMember.id))
    ).first()
    return RecordedApplication(
        gateway_id=app.gateway_id,
        pcs_serial=pcs_serial,
        applied_at=as_utc(app.applied_at),
        gateways=gateway_views(session, app.account_id),
        points_member_gateway_id=member.gateway_id if member else None,
    )


def points_membership_cancelled(session: Session, gateway_id: str) -> bool:
    """The gateway's スマイルeポイント membership was cancelled: its tombstone stops a
    re-join for good (guide p.12), and with it a new circle application (README, rules)."""
    member = session.exec(select(PointsMember).where(PointsMember.gateway_id == gateway_id)).first()
    return member is not None and member.status == "cancelled"


def record_application(engine: Engine, inp: RecordApplicationInput) -> RecordedApplication:
    """Record 申込確定 for one gateway, or raise ``RuleViolation``.

    The partial unique index on active applications decides races: of two concurrent
    applications for one gateway, exactly one commits. The session keeps what it read
    and wrote past the commit (the answer is built from them, not read again).
    """
    with Session(engine, expire_on_commit=False) as session:
        gateway = session.get(Gateway, inp.gateway_id)
        if gateway is None or gateway.account_id != inp.account_id:
            raise RuleViolation(ErrorCode.GATEWAY_NOT_OWNED)
        existing = session.exec(
            select(CircleApplication).where(CircleApplication.request_key == inp.key)
        ).first()
        if existing is not None:
            return _recorded(session, existing, gateway.pcs_serial)
        if gateway.removed_at is not None or gateway_ineligibility(
            gateway.model, gateway.pv_unit_in_use, gateway.battery_unit_in_use
        ):
            raise RuleViolation(ErrorCode.GATEWAY_NOT_ELIGIBLE)
        if points_membership_cancelled(session, gateway.gateway_id):
            raise RuleViolation(ErrorCode.POINTS_MEMBERSHIP_CANCELLED)
        app = CircleApplication(
            request_key=inp.key,
            gateway_id=gateway.gateway_id,
            account_id=inp.account_id,
            status="active",
            applied_at=inp.applied_at,
        )
        # Applied again after 解約: a points membership suspended by it resumes (in this
        # transaction, so a refused application resumes nothing). Looked up before the
        # application is added: the query's autoflush must not insert it outside the try.
        for member in session.exec(
            select(PointsMember).where(
                PointsMember.gateway_id == gateway.gateway_id,
                col(PointsMember.circle_cancelled_at).is_not(None),
            )
        ):
            member.circle_cancelled_at = None
            session.add(member)
        session.add(app)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            again = session.exec(
                select(CircleApplication).where(CircleApplication.request_key == inp.key)
            ).first()
            if again is not None:
                return _recorded(session, again, gateway.pcs_serial)
            raise RuleViolation(ErrorCode.GATEWAY_ALREADY_APPLIED) from None
        return _recorded(session, app, gateway.pcs_serial)


def cancel_application(engine: Engine, inp: CancelApplicationInput) -> list[GatewayView]:
    """Cancel (解約) the gateway's active application; idempotent for one request key."""
    with Session(engine) as session:
        app = session.exec(
            select(CircleApplication).where(
                CircleApplication.gateway_id == inp.gateway_id,
                CircleApplication.account_id == inp.account_id,
                CircleApplication.status == "active",
            )
        ).first()
        if app is not None:
            app.status = "cancelled"
            app.cancelled_at = inp.cancelled_at
            session.add(app)
            session.commit()
        else:
            already = session.exec(
                select(CircleApplication).where(
                    CircleApplication.gateway_id == inp.gateway_id,
                    CircleApplication.account_id == inp.account_id,
                    CircleApplication.cancelled_at == inp.cancelled_at,
                )
            ).first()
            if already is None:
                raise RuleViolation(ErrorCode.APPLICATION_NOT_FOUND)
        return gateway_views(session, inp.account_id)


def create_account(
    engine: Engine,
    account: Account,
    gateways: list[Gateway],
    *,
    start: JourneyStart | None = None,
) -> Account:
    """Register a monitoring account with its gateways, all or nothing.

    With ``start``, the journey's start is recorded in the same transaction (the outbox of
    journey starts, ``store/starts.py``): the account never exists without it.
    """
    with Session(engine) as session:
        if session.exec(select(Account).where(Account.email == account.email)).first():
            raise RuleViolation(ErrorCode.ACCOUNT_EXISTS)
        taken = session.exec(
            select(Gateway).where(col(Gateway.gateway_id).in_([g.gateway_id for g in gateways]))
        ).first()
        if taken is not None:
            raise RuleViolation(ErrorCode.GATEWAY_REGISTERED)
        session.add(account)
        session.flush()
        for gateway in gateways:
            gateway.account_id = account.id
            session.add(gateway)
        if start is not None:
            start.account_id = account.id
            session.add(start)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            raise RuleViolation(ErrorCode.ACCOUNT_EXISTS) from None
        session.refresh(account)
        session.expunge(account)
        return account


def application_counts(engine: Engine, account_id: str, gateway_id: str) -> tuple[int, int]:
    """How many applications this account made for this gateway, and how many it cancelled.

    The API derives the update ID of an application from the cancelled count and of a
    cancellation from the total: a retried request finds the same counts and attaches to
    its first attempt, while applying again after a cancellation is a new request.
    """
    with Session(engine) as session:
        rows = session.exec(
            select(CircleApplication.status).where(
                CircleApplication.account_id == account_id,
                CircleApplication.gateway_id == gateway_id,
            )
        ).all()
    return len(rows), sum(1 for status in rows if status == "cancelled")
