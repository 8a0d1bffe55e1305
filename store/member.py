"""Store operations of the スマイルeポイント member's side: log-in look-up, 照会, change of
e-mail, the circle-cancellation mark, the operators' list.

Rules that must hold whatever Temporal remembers are here: one pending change of e-mail
per member (a partial unique index), the new address unique among members, tombstones
included (the unique e-mail of ``points_members``), and a link that is only valid while
its row is ``pending`` and unexpired, checked in the transaction that uses it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from domain.errors import ErrorCode
from domain.member import ApplyEmailChangeInput, EmailChangeState, IssueEmailChangeInput
from store.enrollment import RuleViolation, as_utc
from store.signup import token_hash
from store.tables import Consent, Gateway, MemberEmailChange, PointsMember


@dataclass(frozen=True)
class AgreedDocument:
    document: str
    version: str
    agreed_at: datetime


@dataclass(frozen=True)
class MemberRecord:
    """What 照会 shows; no password hash."""

    member_id: int
    email: str
    name: str
    gateway_id: str
    pcs_serial: str
    status: str  # "active" | "suspended" | "cancelled" (domain.member.MemberStatus)
    registered_at: datetime
    circle_cancelled_at: datetime | None
    cancelled_at: datetime | None
    documents: list[AgreedDocument]
    email_change_expires_at: datetime | None


def signup_of(engine: Engine, member_id: int) -> str | None:
    """The member's opaque reference (the signup that created it; its workflow's key)."""
    with Session(engine) as session:
        member = session.get(PointsMember, member_id)
        return member.signup_id if member else None


def member_for_login(engine: Engine, email: str) -> tuple[int, str] | None:
    """(member ID, password hash) of a member that may log in: a cancelled one may not."""
    with Session(engine) as session:
        member = session.exec(
            select(PointsMember).where(PointsMember.email == email, PointsMember.status == "active")
        ).first()
        return (member.id, member.password_hash) if member and member.id else None


def member_status(engine: Engine, member_id: int) -> str | None:
    with Session(engine) as session:
        member = session.get(PointsMember, member_id)
        return member.status if member else None


def member_record(engine: Engine, member_id: int) -> MemberRecord | None:
    with Session(engine) as session:
        member = session.get(PointsMember, member_id)
        if member is None or member.id is None:
            return None
        gateway = session.get(Gateway, member.gateway_id)
        consents = session.exec(
            select(Consent)
            .where(
                Consent.account_id == member.account_id,
                col(Consent.request_key).startswith(f"{member.signup_id}:"),
                Consent.decision == "agreed",
            )
            .order_by(col(Consent.document))
        ).all()
        pending = session.exec(
            select(MemberEmailChange).where(
                MemberEmailChange.member_id == member.id,
                MemberEmailChange.status == EmailChangeState.PENDING.value,
            )
        ).first()
        status = member.status
        if status == "active" and member.circle_cancelled_at is not None:
            status = "suspended"
        return MemberRecord(
            member_id=member.id,
            email=member.email,
            name=member.name,
            gateway_id=member.gateway_id,
            pcs_serial=gateway.pcs_serial if gateway else "",
            status=status,
            registered_at=as_utc(member.registered_at),
            circle_cancelled_at=_utc_or_none(member.circle_cancelled_at),
            cancelled_at=_utc_or_none(member.cancelled_at),
            documents=[
                AgreedDocument(c.document, c.version, as_utc(c.decided_at)) for c in consents
            ],
            email_change_expires_at=_utc_or_none(pending.expires_at if pending else None),
        )


def _utc_or_none(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def record_email_change(engine: Engine, member_id: int, new_email: str, at: datetime) -> str:
    """The API keeps the requested address here (never in a workflow); returns its ID."""
    with Session(engine) as session:
        member = session.get(PointsMember, member_id)
        if member is None or member.status == "cancelled":
            raise RuleViolation(ErrorCode.MEMBER_CANCELLED)
        if member.email == new_email:
            raise RuleViolation(ErrorCode.EMAIL_UNCHANGED)
        change = MemberEmailChange(
            member_id=member_id, new_email=new_email, status="requested", requested_at=at
        )
        session.add(change)
        session.commit()
        return change.id


def issue_email_change(
    engine: Engine, inp: IssueEmailChangeInput
) -> tuple[str | None, EmailChangeState]:
    """Make the change's link (token, state), replacing the member's older pending one.

    A new address that is (or was) any member's gets no link: state ``taken``, and the
    caller mails it a neutral note. Idempotent: a retry for a link already mailed returns
    no token; one not yet mailed gets a fresh token (the old one never left).
    """
    with Session(engine) as session:
        change = session.get(MemberEmailChange, inp.change_id)
        if change is None or change.member_id != inp.member_id:
            raise RuleViolation(ErrorCode.EMAIL_CHANGE_UNKNOWN)
        if change.status not in ("requested", EmailChangeState.PENDING.value):
            return None, EmailChangeState(change.status)
        if change.mailed:
            return None, EmailChangeState(change.status)
        for older in session.exec(
            select(MemberEmailChange).where(
                MemberEmailChange.member_id == inp.member_id,
                MemberEmailChange.status == EmailChangeState.PENDING.value,
                MemberEmailChange.id != change.id,
            )
        ):
            older.status = EmailChangeState.REPLACED.value
            older.closed_at = inp.requested_at
            session.add(older)
        session.flush()  # the older one leaves the partial unique index first
        taken = session.exec(
            select(PointsMember).where(PointsMember.email == change.new_email)
        ).first()
        token: str | None = None
        if taken is not None:
            change.status = EmailChangeState.TAKEN.value
            change.closed_at = inp.requested_at
        else:
            token = secrets.token_urlsafe(32)  # 256 bits
            change.status = EmailChangeState.PENDING.value
            change.token_sha256 = token_hash(token)
            change.expires_at = inp.expires_at
        session.add(change)
        session.commit()
        return token, EmailChangeState(change.status)


def mark_email_change_mailed(engine: Engine, change_id: str) -> None:
    with Session(engine) as session:
        change = session.get(MemberEmailChange, change_id)
        if change is not None:
            change.mailed = True
            session.add(change)
            session.commit()


_REFUSAL = {
    EmailChangeState.REPLACED.value: ErrorCode.EMAIL_CHANGE_REPLACED,
    EmailChangeState.USED.value: ErrorCode.EMAIL_CHANGE_USED,
    EmailChangeState.EXPIRED.value: ErrorCode.EMAIL_CHANGE_EXPIRED,
    EmailChangeState.CANCELLED.value: ErrorCode.MEMBER_CANCELLED,
}


def change_for_token(engine: Engine, token: str) -> MemberEmailChange | None:
    with Session(engine) as session:
        change = session.exec(
            select(MemberEmailChange).where(MemberEmailChange.token_sha256 == token_hash(token))
        ).first()
        if change is not None:
            session.expunge(change)
        return change


def refusal_for(change: MemberEmailChange, at: datetime) -> ErrorCode | None:
    """Why this change's link no longer works at ``at``, or None while it does."""
    if change.status in _REFUSAL:
        return _REFUSAL[change.status]
    if change.status != EmailChangeState.PENDING.value:
        return ErrorCode.EMAIL_CHANGE_UNKNOWN
    if change.expires_at is None or as_utc(change.expires_at) <= at:
        return ErrorCode.EMAIL_CHANGE_EXPIRED
    return None


def apply_email_change(engine: Engine, inp: ApplyEmailChangeInput) -> str:
    """Use the link: the member's address becomes the new one. Returns the change ID.

    Idempotent (a retry of a used change answers the same); everything is checked again
    here, in the transaction that changes the address.
    """
    with Session(engine) as session:
        change = session.get(MemberEmailChange, inp.change_id)
        if (
            change is None
            or change.member_id != inp.member_id
            or change.token_sha256 is None
            or not hmac.compare_digest(change.token_sha256, inp.token_sha256)
        ):
            raise RuleViolation(ErrorCode.EMAIL_CHANGE_UNKNOWN)
        if change.status == EmailChangeState.USED.value:
            return change.id
        refusal = refusal_for(change, inp.at)
        if refusal is not None:
            raise RuleViolation(refusal)
        member = session.get(PointsMember, inp.member_id)
        if member is None or member.status == "cancelled":
            raise RuleViolation(ErrorCode.MEMBER_CANCELLED)
        change.old_email = member.email
        change.status = EmailChangeState.USED.value
        change.closed_at = inp.at
        member.email = change.new_email
        session.add(change)
        session.add(member)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            # Someone became a member with that address after the link was mailed.
            session.rollback()
            raise RuleViolation(ErrorCode.EMAIL_CHANGE_UNAVAILABLE) from None
        return change.id


def expire_email_change(engine: Engine, change_id: str, at: datetime) -> None:
    with Session(engine) as session:
        change = session.get(MemberEmailChange, change_id)
        if change is not None and change.status == EmailChangeState.PENDING.value:
            change.status = EmailChangeState.EXPIRED.value
            change.closed_at = at
            session.add(change)
            session.commit()


def email_of(engine: Engine, member_id: int) -> str:
    with Session(engine) as session:
        member = session.get(PointsMember, member_id)
        if member is None:
            raise RuleViolation(ErrorCode.MEMBER_CANCELLED)
        return member.email


def mark_circle_cancelled(
    engine: Engine, account_id: str, gateway_id: str, at: datetime
) -> int | None:
    """The circle application of this gateway was cancelled: mark its member (if any, and
    not cancelled) suspended. Returns the member's ID; the first mark's time is kept."""
    with Session(engine) as session:
        member = session.exec(
            select(PointsMember).where(
                PointsMember.gateway_id == gateway_id,
                PointsMember.account_id == account_id,
                PointsMember.status == "active",
            )
        ).first()
        if member is None:
            return None
        if member.circle_cancelled_at is None:
            member.circle_cancelled_at = at
            session.add(member)
            session.commit()
            session.refresh(member)
        return member.id


def suspended_members(engine: Engine) -> list[tuple[str, str, datetime]]:
    """The operators' list: (member ref, gateway, since) of members whose circle
    application was cancelled. No address: an operator looks a member up by its ID."""
    with Session(engine) as session:
        rows = session.exec(
            select(PointsMember)
            .where(col(PointsMember.circle_cancelled_at).is_not(None))
            .where(PointsMember.status == "active")
            .order_by(col(PointsMember.circle_cancelled_at))
        ).all()
        return [
            (m.signup_id, m.gateway_id, as_utc(m.circle_cancelled_at))
            for m in rows
            if m.circle_cancelled_at is not None
        ]
