"""Store operations shared by activities, the API and the CLI.

Each write is one transaction and is idempotent by its request key: an activity retried
after its first attempt committed gets the first attempt's result back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
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
    Enrollment,
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


_GATEWAYS = Gateway.__table__  # type: ignore[attr-defined]
_APPLICATIONS = CircleApplication.__table__  # type: ignore[attr-defined]
_MEMBERS = PointsMember.__table__  # type: ignore[attr-defined]

_ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
_ENROLLMENTS = Enrollment.__table__  # type: ignore[attr-defined]

# The statements below are built once, each call binding its values: the journey's steps
# read them on every eligibility check, application and 解約 (rows, not ORM objects: a
# fifth of the CPU). First, what a gateway's view and its eligibility need.
_GATEWAY_FIELDS = tuple(
    _GATEWAYS.c[name]
    for name in (
        "gateway_id",
        "pcs_serial",
        "model",
        "pv_unit_in_use",
        "battery_unit_in_use",
        "removed_at",
    )
)
_ACCOUNT_GATEWAYS = (
    sa.select(*_GATEWAY_FIELDS)
    .where(_GATEWAYS.c.account_id == sa.bindparam("account_id"))
    .order_by(_GATEWAYS.c.gateway_id)
)
_ACCOUNT_APPLICATIONS = (
    sa.select(
        _APPLICATIONS.c.gateway_id,
        _APPLICATIONS.c.status,
        _APPLICATIONS.c.applied_at,
        _APPLICATIONS.c.cancelled_at,
    )
    .where(_APPLICATIONS.c.account_id == sa.bindparam("account_id"))
    .order_by(_APPLICATIONS.c.id)
)
_APPLICATION_BY_KEY = sa.select(
    _APPLICATIONS.c.account_id, _APPLICATIONS.c.gateway_id, _APPLICATIONS.c.applied_at
).where(_APPLICATIONS.c.request_key == sa.bindparam("key"))
_ACTIVE_MEMBER_GATEWAY = (
    sa.select(_MEMBERS.c.gateway_id)
    .where(_MEMBERS.c.account_id == sa.bindparam("account_id"), _MEMBERS.c.status == "active")
    .order_by(_MEMBERS.c.id)
    .limit(1)
)
_OF_CALLER_AND_GATEWAY = (
    _APPLICATIONS.c.account_id == _ACCOUNTS.c.id,
    _APPLICATIONS.c.gateway_id == sa.bindparam("gateway_id"),
)
_APPLICATION_CALLER = sa.select(
    sa.exists().where(_ENROLLMENTS.c.account_id == _ACCOUNTS.c.id).label("started"),
    sa.select(sa.func.count())
    .where(*_OF_CALLER_AND_GATEWAY)
    .scalar_subquery()
    .label("applications"),
    sa.select(
        sa.func.coalesce(
            sa.func.sum(sa.case((_APPLICATIONS.c.status == "cancelled", 1), else_=0)), 0
        )
    )
    .where(*_OF_CALLER_AND_GATEWAY)
    .scalar_subquery()
    .label("cancelled"),
).where(_ACCOUNTS.c.id == sa.bindparam("account_id"))
_HOLDER_TYPE = sa.select(_ACCOUNTS.c.holder_type).where(
    _ACCOUNTS.c.id == sa.bindparam("account_id")
)
# Applied again after 解約: a points membership suspended by it resumes.
_RESUME_MEMBERS = (
    sa.update(_MEMBERS)
    .where(
        _MEMBERS.c.gateway_id == sa.bindparam("resumed_gateway"),
        _MEMBERS.c.circle_cancelled_at.is_not(None),
    )
    .values(circle_cancelled_at=None)
)
_PRIOR = _APPLICATIONS.alias("prior")
# 申込確定's one read before it writes: the gateway (with its owner), the application
# already made under the request's key (a retry), and the gateway's points membership.
_APPLYING = (
    sa.select(
        *_GATEWAY_FIELDS,
        _GATEWAYS.c.account_id,
        _PRIOR.c.account_id.label("prior_account_id"),
        _PRIOR.c.gateway_id.label("prior_gateway_id"),
        _PRIOR.c.applied_at.label("prior_applied_at"),
        sa.select(_MEMBERS.c.status)
        .where(_MEMBERS.c.gateway_id == _GATEWAYS.c.gateway_id)
        .scalar_subquery()
        .label("member_status"),
    )
    .select_from(_GATEWAYS.outerjoin(_PRIOR, _PRIOR.c.request_key == sa.bindparam("key")))
    .where(_GATEWAYS.c.gateway_id == sa.bindparam("gateway_id"))
)
_INSERT_APPLICATION = sa.insert(_APPLICATIONS)
_GATEWAY_STANDING = sa.select(
    _GATEWAYS.c.account_id,
    _GATEWAYS.c.pcs_serial,
    sa.exists()
    .where(_APPLICATIONS.c.gateway_id == _GATEWAYS.c.gateway_id, _APPLICATIONS.c.status == "active")
    .label("applied"),
    sa.exists().where(_MEMBERS.c.gateway_id == _GATEWAYS.c.gateway_id).label("member"),
).where(_GATEWAYS.c.gateway_id == sa.bindparam("gateway_id"))


@dataclass(frozen=True)
class GatewayStanding:
    """What STEP3 asks of a gateway, read in one statement."""

    account_id: str
    pcs_serial: str
    applied: bool  # it backs an active circle application
    member: bool  # a スマイルeポイント member (active or not) holds it


def gateway_standing(conn: Session | Connection, gateway_id: str) -> GatewayStanding | None:
    """The gateway's owner, serial, application and membership; None if it is unknown."""
    row = conn.execute(_GATEWAY_STANDING, {"gateway_id": gateway_id}).first()
    if row is None:
        return None
    return GatewayStanding(row.account_id, row.pcs_serial, bool(row.applied), bool(row.member))


def gateway_views(session: Session | Connection, account_id: str) -> list[GatewayView]:
    """The account's gateways with eligibility and the latest application of each."""
    bound = {"account_id": account_id}
    gateways = session.execute(_ACCOUNT_GATEWAYS, bound).all()
    latest = {app.gateway_id: app for app in session.execute(_ACCOUNT_APPLICATIONS, bound)}
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
    with engine.connect() as conn:
        holder_type = conn.execute(_HOLDER_TYPE, {"account_id": account_id}).scalar_one_or_none()
        if holder_type is None:
            return EligibilityResult(eligible=False, reason=IneligibleReason.ACCOUNT_NOT_FOUND)
        views = gateway_views(conn, account_id)
    if holder_type != "individual":
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


def _recorded(
    session: Connection,
    account_id: str,
    gateway_id: str,
    applied_at: datetime,
    pcs_serial: str,
) -> RecordedApplication:
    member_gateway = session.execute(
        _ACTIVE_MEMBER_GATEWAY, {"account_id": account_id}
    ).scalar_one_or_none()
    return RecordedApplication(
        gateway_id=gateway_id,
        pcs_serial=pcs_serial,
        applied_at=as_utc(applied_at),
        gateways=gateway_views(session, account_id),
        points_member_gateway_id=member_gateway,
    )


def _gateway_to_apply(conn: Connection, inp: RecordApplicationInput) -> Any:
    """``_APPLYING``'s row for the request; ``GATEWAY_NOT_OWNED`` unless the gateway is
    the account's."""
    row = conn.execute(_APPLYING, {"gateway_id": inp.gateway_id, "key": inp.key}).first()
    if row is None or row.account_id != inp.account_id:
        raise RuleViolation(ErrorCode.GATEWAY_NOT_OWNED)
    return row


def record_application(engine: Engine, inp: RecordApplicationInput) -> RecordedApplication:
    """Record 申込確定 for one gateway, or raise ``RuleViolation``.

    The partial unique index on active applications decides races: of two concurrent
    applications for one gateway, exactly one commits. Every statement is built once and
    reads rows, not ORM objects, on one connection: the gateway, an application already
    made under the request's key and the gateway's points membership in one read; after
    the commit, only what the answer needs (README, Benchmarks: 申込確定 waits for this).
    """
    with engine.connect() as conn:
        try:
            with conn.begin():
                row = _gateway_to_apply(conn, inp)
                if row.prior_account_id is not None:  # a retry: the first attempt's answer
                    return _recorded(
                        conn,
                        row.prior_account_id,
                        row.prior_gateway_id,
                        row.prior_applied_at,
                        row.pcs_serial,
                    )
                if row.removed_at is not None or gateway_ineligibility(
                    row.model, row.pv_unit_in_use, row.battery_unit_in_use
                ):
                    raise RuleViolation(ErrorCode.GATEWAY_NOT_ELIGIBLE)
                if row.member_status == "cancelled":
                    # The gateway's スマイルeポイント membership was cancelled: its tombstone
                    # stops a re-join for good (guide p.12), and with it a new circle
                    # application (README, rules).
                    raise RuleViolation(ErrorCode.POINTS_MEMBERSHIP_CANCELLED)
                # A points membership suspended by 解約 resumes in the same transaction,
                # so a refused application resumes nothing.
                conn.execute(_RESUME_MEMBERS, {"resumed_gateway": row.gateway_id})
                conn.execute(
                    _INSERT_APPLICATION,
                    {
                        "request_key": inp.key,
                        "gateway_id": row.gateway_id,
                        "account_id": inp.account_id,
                        "status": "active",
                        "applied_at": inp.applied_at,
                    },
                )
        except sa.exc.IntegrityError:
            # Only the writes collide (another attempt of the request, or another
            # application of the gateway, committed first), so ``row`` was read.
            again = conn.execute(_APPLICATION_BY_KEY, {"key": inp.key}).first()
            if again is not None:
                return _recorded(
                    conn, again.account_id, again.gateway_id, again.applied_at, row.pcs_serial
                )
            raise RuleViolation(ErrorCode.GATEWAY_ALREADY_APPLIED) from None
        return _recorded(conn, inp.account_id, row.gateway_id, inp.applied_at, row.pcs_serial)


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


@dataclass(frozen=True)
class ApplicationCaller:
    """A signed-in caller about to apply for, or cancel, one gateway
    (``application_caller``): whether its journey was started, how many applications it
    made for the gateway and how many of them it cancelled."""

    started: bool
    applications: int
    cancelled: int


def application_caller(
    engine: Engine, account_id: str, gateway_id: str
) -> ApplicationCaller | None:
    """The API's one statement before 申込確定 or 解約: ``None`` when the account does not
    exist (any more), else whether its journey was started and its counts for the gateway.

    The API derives the update ID of an application from the cancelled count and of a
    cancellation from the total: a retried request finds the same counts and attaches to
    its first attempt, while applying again after a cancellation is a new request.
    """
    with engine.connect() as conn:
        row = conn.execute(
            _APPLICATION_CALLER, {"account_id": account_id, "gateway_id": gateway_id}
        ).first()
    if row is None:
        return None
    return ApplicationCaller(bool(row.started), int(row.applications), int(row.cancelled))
