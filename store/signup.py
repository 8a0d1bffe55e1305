"""Store operations of the スマイルeポイント signup: reservation, links, members.

The rules that must outlive Temporal's retention are constraints here: one pending signup
per e-mail (the reservation), one member per e-mail and per gateway, and cancelled members
kept as tombstones so that nobody re-joins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.errors import ErrorCode
from domain.ids import signup_workflow_id
from domain.signup import (
    GatewayMatch,
    IssueLinkInput,
    LinkIssued,
    RecordLinkInput,
    RegisterMemberInput,
)
from store.enrollment import RuleViolation, as_utc, consent_row, gateway_standing
from store.holder import holder_may_register
from store.tables import (
    CircleApplication,
    Consent,
    MemberEmailChange,
    PointSignup,
    PointsMember,
    SignupLink,
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignupTicket:
    signup_id: str
    workflow_id: str
    already_member: bool


def open_signup(engine: Engine, email: str) -> SignupTicket:
    """The pending signup of this address, or a new one (the reservation).

    An address that is (or was) a member gets a signup of its own that reserves nothing:
    its workflow only mails the address what happened.
    """
    with Session(engine) as session:
        if session.exec(select(PointsMember).where(PointsMember.email == email)).first():
            signup = PointSignup(email=email, status="refused", workflow_id="")
            signup.workflow_id = signup_workflow_id(signup.id)
            session.add(signup)
            session.commit()
            return SignupTicket(signup.id, signup.workflow_id, already_member=True)
        for _ in range(2):
            pending = session.exec(
                select(PointSignup).where(
                    PointSignup.email == email, PointSignup.status == "pending"
                )
            ).first()
            if pending is not None:
                return SignupTicket(pending.id, pending.workflow_id, already_member=False)
            signup = PointSignup(email=email, status="pending", workflow_id="")
            signup.workflow_id = signup_workflow_id(signup.id)
            session.add(signup)
            try:
                session.commit()
                return SignupTicket(signup.id, signup.workflow_id, already_member=False)
            except sa.exc.IntegrityError:
                session.rollback()  # a concurrent entry reserved it first: use that one
        raise RuntimeError("could not reserve the address")


@dataclass(frozen=True)
class NoticeCap:
    """At most ``count`` "already registered" signups (so mails) per address since ``since``."""

    count: int
    since: datetime


def open_signup_capped(engine: Engine, email: str, cap: NoticeCap) -> SignupTicket | None:
    """``open_signup``, except that a member's address already told ``cap.count`` times
    since ``cap.since`` gets None: no signup, no mail (entering a member's address again
    and again must not flood its owner)."""
    with Session(engine) as session:
        if session.exec(select(PointsMember).where(PointsMember.email == email)).first():
            told = session.exec(
                select(sa.func.count())
                .select_from(PointSignup)
                .where(
                    PointSignup.email == email,
                    PointSignup.status == "refused",
                    PointSignup.created_at >= cap.since,
                )
            ).one()
            if told >= cap.count:
                return None
    return open_signup(engine, email)


def link_token(key: bytes, signup_id: str, seq: int, salt: str) -> str:
    """The token of link ``seq``: HMAC-SHA256 with the server's link key, URL-safe.

    Derived, not drawn: a retried mail carries the same link as the first attempt, and
    the store keeps only the salt (not secret) and the token's hash. 256 bits.
    """
    mac = hmac.new(key, f"signup-link|{signup_id}|{seq}|{salt}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _new_salt() -> str:
    return secrets.token_urlsafe(16)


def record_link(engine: Engine, key: bytes, inp: RecordLinkInput) -> LinkIssued:
    """Record the signup's next link (its number = the store's last + 1) and return what
    the workflow may know of it: the hash, never the token.

    Idempotent by ``request_key``: a retry returns the link recorded by the first try.
    The number comes from the store, so a new run of a signup (after an operator ended
    the old one) continues the count instead of reusing a number that was mailed.
    """
    for _ in range(3):
        with Session(engine) as session:
            done = session.exec(
                select(SignupLink).where(SignupLink.request_key == inp.request_key)
            ).first()
            if done is not None:
                return _issued(done)
            last = session.exec(
                select(sa.func.max(SignupLink.seq)).where(SignupLink.signup_id == inp.signup_id)
            ).one()
            seq = (last or 0) + 1
            salt = _new_salt()
            link = SignupLink(
                signup_id=inp.signup_id,
                seq=seq,
                token_sha256=token_hash(link_token(key, inp.signup_id, seq, salt)),
                salt=salt,
                request_key=inp.request_key,
                issued_at=inp.issued_at,
                expires_at=inp.issued_at + inp.ttl,
            )
            session.add(link)
            try:
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()  # a concurrent try took this number or key: look again
                continue
            session.refresh(link)
            return _issued(link)
    raise RuntimeError("could not record the link")


@dataclass(frozen=True)
class LinkToMail:
    token: str
    expires_at: datetime
    current: bool  # no newer link of the signup exists


class LinkKeyMismatch(Exception):
    """The derived token does not hash to the stored one: the link key changed."""


def link_to_mail(engine: Engine, key: bytes, signup_id: str, seq: int) -> LinkToMail:
    """Re-derive link ``seq``'s token for its mail, checked against the stored hash."""
    with Session(engine) as session:
        link = session.exec(
            select(SignupLink).where(SignupLink.signup_id == signup_id, SignupLink.seq == seq)
        ).one()
        newest = session.exec(
            select(sa.func.max(SignupLink.seq)).where(SignupLink.signup_id == signup_id)
        ).one()
        if link.salt is None:
            raise LinkKeyMismatch("link recorded without a salt")
        token = link_token(key, signup_id, seq, link.salt)
        if not hmac.compare_digest(token_hash(token), link.token_sha256):
            raise LinkKeyMismatch("the link key changed since the link was recorded")
        return LinkToMail(token, as_utc(link.expires_at), current=newest == seq)


def issue_link(engine: Engine, key: bytes, inp: IssueLinkInput) -> tuple[str | None, LinkIssued]:
    """Create link ``seq`` of a signup: (token, what the workflow may know).

    Kept for runs recorded before links were recorded and mailed separately (their
    workflow code calls the ``issue_link`` activity). Idempotent: a retry for a link
    already mailed returns no token; a retry for one not yet mailed gets the same token
    (derived from the stored salt), so a mail that did leave still carries a live link.
    """
    with Session(engine) as session:
        link = session.exec(
            select(SignupLink).where(
                SignupLink.signup_id == inp.signup_id, SignupLink.seq == inp.seq
            )
        ).first()
        if link is not None and link.mailed:
            return None, _issued(link)
        if link is None:
            link = SignupLink(
                signup_id=inp.signup_id,
                seq=inp.seq,
                token_sha256="",
                issued_at=inp.issued_at,
                expires_at=inp.expires_at,
            )
        if link.salt is None:
            link.salt = _new_salt()
        token = link_token(key, inp.signup_id, inp.seq, link.salt)
        link.token_sha256 = token_hash(token)
        session.add(link)
        session.commit()
        session.refresh(link)
        return token, _issued(link)


def _issued(link: SignupLink) -> LinkIssued:
    return LinkIssued(
        seq=link.seq,
        token_sha256=link.token_sha256,
        issued_at=as_utc(link.issued_at),
        expires_at=as_utc(link.expires_at),
    )


def mark_link_mailed(engine: Engine, signup_id: str, seq: int) -> None:
    with Session(engine) as session:
        link = session.exec(
            select(SignupLink).where(SignupLink.signup_id == signup_id, SignupLink.seq == seq)
        ).one()
        link.mailed = True
        session.add(link)
        session.commit()


def signup_for_token(engine: Engine, token: str) -> PointSignup | None:
    """The signup a link token belongs to (looked up by the token's hash)."""
    with Session(engine) as session:
        link = session.exec(
            select(SignupLink).where(SignupLink.token_sha256 == token_hash(token))
        ).first()
        signup = session.get(PointSignup, link.signup_id) if link else None
        if signup is not None:
            session.expunge(signup)
        return signup


def match_applied_gateway(engine: Engine, gateway_id: str, pcs_serial: str) -> GatewayMatch:
    """The gateway must back a confirmed (active) circle application and no member yet.

    A wrong serial and an unapplied gateway get the same answer, so the pair cannot be
    probed one half at a time.
    """
    with engine.connect() as conn:
        gateway = gateway_standing(conn, gateway_id)
    if gateway is None or not gateway.applied or gateway.pcs_serial != pcs_serial:
        raise RuleViolation(ErrorCode.GATEWAY_NOT_APPLIED)
    if gateway.member:
        raise RuleViolation(ErrorCode.GATEWAY_ALREADY_MEMBER)
    return GatewayMatch(gateway_id=gateway_id, pcs_serial=pcs_serial, account_id=gateway.account_id)


_MEMBERS = PointsMember.__table__  # type: ignore[attr-defined]
_SIGNUPS = PointSignup.__table__  # type: ignore[attr-defined]
_APPLICATIONS = CircleApplication.__table__  # type: ignore[attr-defined]
_CONSENTS = Consent.__table__  # type: ignore[attr-defined]
# ``register_member``'s statements, built once (each call binds its values).
_MEMBER_OF_SIGNUP = sa.select(_MEMBERS).where(_MEMBERS.c.signup_id == sa.bindparam("signup_id"))
_MEMBER_OF_GATEWAY = sa.select(_MEMBERS.c.id).where(
    _MEMBERS.c.gateway_id == sa.bindparam("gateway_id")
)
_SIGNUP_EMAIL = sa.select(_SIGNUPS.c.email).where(_SIGNUPS.c.id == sa.bindparam("signup_id"))
# Row locked on PostgreSQL: a concurrent 解約 of the application waits for the member.
_ACTIVE_APPLICATION = (
    sa.select(_APPLICATIONS.c.id)
    .where(
        _APPLICATIONS.c.gateway_id == sa.bindparam("gateway_id"),
        _APPLICATIONS.c.account_id == sa.bindparam("account_id"),
        _APPLICATIONS.c.status == "active",
    )
    .with_for_update()
)
_INSERT_CONSENTS = sa.insert(_CONSENTS)
_CLOSE_SIGNUP = (
    sa.update(_SIGNUPS)
    .where(_SIGNUPS.c.id == sa.bindparam("b_signup_id"))
    .values(status="registered", closed_at=sa.bindparam("b_closed_at"))
)
_INSERT_MEMBER = sa.insert(_MEMBERS).returning(_MEMBERS.c.id)


def register_member(engine: Engine, inp: RegisterMemberInput) -> PointsMember:
    """Create the member, record the two consents, close the reservation: one transaction.

    Idempotent by signup, also for two attempts at once (an activity retried while its
    first attempt still runs): the one that loses the race returns the member the other
    wrote. Uniqueness of e-mail and gateway is the database's to decide. Statements built
    once, no ORM session: the customer's 登録する waits for this (README, Benchmarks); the
    member returned is built from what was written.
    """
    try:
        with engine.begin() as conn:
            existing = conn.execute(_MEMBER_OF_SIGNUP, {"signup_id": inp.signup_id}).first()
            if existing is not None:
                return PointsMember(**existing._mapping)
            email = conn.execute(_SIGNUP_EMAIL, {"signup_id": inp.signup_id}).scalar()
            if email is None:
                raise RuleViolation(ErrorCode.SIGNUP_CLOSED)
            # Checked again here, in the transaction that creates the member: the
            # application may have been cancelled since STEP3, and the holder must have
            # confirmed a stranger's address.
            gateway = inp.gateway
            active = conn.execute(
                _ACTIVE_APPLICATION,
                {"gateway_id": gateway.gateway_id, "account_id": gateway.account_id},
            ).first()
            if active is None:
                raise RuleViolation(ErrorCode.APPLICATION_NOT_ACTIVE)
            if not holder_may_register(conn, inp.signup_id, email, gateway):
                raise RuleViolation(ErrorCode.HOLDER_CONFIRMATION_PENDING)
            conn.execute(
                _INSERT_CONSENTS,
                [
                    consent_row(
                        f"{inp.signup_id}:{terms.document}",
                        gateway.account_id,
                        terms,
                        "agreed",
                        agreed_at,
                        "points_signup",
                    ).model_dump(exclude={"id"})
                    for terms, agreed_at in inp.agreed
                ],
            )
            conn.execute(
                _CLOSE_SIGNUP, {"b_signup_id": inp.signup_id, "b_closed_at": inp.registered_at}
            )
            values = _member_values(inp, email)
            member_id = conn.execute(_INSERT_MEMBER, values).scalar_one()
    except sa.exc.IntegrityError:
        with engine.connect() as conn:
            ours = conn.execute(_MEMBER_OF_SIGNUP, {"signup_id": inp.signup_id}).first()
            if ours is not None:  # another attempt of this registration committed first
                return PointsMember(**ours._mapping)
            taken = conn.execute(_MEMBER_OF_GATEWAY, {"gateway_id": inp.gateway.gateway_id}).first()
        code = ErrorCode.GATEWAY_ALREADY_MEMBER if taken else ErrorCode.EMAIL_ALREADY_MEMBER
        raise RuleViolation(code) from None
    return PointsMember(id=member_id, **values)


def _member_values(inp: RegisterMemberInput, email: str) -> dict[str, Any]:
    info = inp.info
    installation = info.installation_address
    return {
        "signup_id": inp.signup_id,
        "email": email,
        "gateway_id": inp.gateway.gateway_id,
        "account_id": inp.gateway.account_id,
        "service": inp.service.value,
        "name": info.name,
        "furigana": info.furigana,
        "postal_code": info.address.postal_code,
        "prefecture": info.address.prefecture,
        "address": info.address.address,
        "installation_postal_code": installation.postal_code if installation else None,
        "installation_prefecture": installation.prefecture if installation else None,
        "installation_address": installation.address if installation else None,
        "phone": "-".join(info.phone),
        "password_hash": inp.password_hash,
        "status": "active",
        "registered_at": inp.registered_at,
    }


def release_signup(engine: Engine, signup_id: str, at: datetime) -> None:
    """An abandoned signup gives its e-mail reservation back."""
    with Session(engine) as session:
        signup = session.get(PointSignup, signup_id)
        if signup is not None and signup.status == "pending":
            signup.status = "abandoned"
            signup.closed_at = at
            session.add(signup)
            session.commit()


def cancel_member(engine: Engine, email: str, at: datetime) -> PointsMember:
    """解約 of the points membership: the row stays, as the tombstone (its e-mail and
    gateway stay taken for good). A pending change of e-mail dies with it. Idempotent:
    cancelling again keeps the first time."""
    with Session(engine) as session:
        member = session.exec(select(PointsMember).where(PointsMember.email == email)).one()
        if member.status != "cancelled":
            member.status = "cancelled"
            member.cancelled_at = at
            session.add(member)
            for change in session.exec(
                select(MemberEmailChange).where(
                    MemberEmailChange.member_id == member.id,
                    MemberEmailChange.status.in_(["requested", "pending"]),  # type: ignore[attr-defined]
                )
            ):
                change.status = "cancelled"
                change.closed_at = at
                session.add(change)
            session.commit()
            session.refresh(member)
        session.expunge(member)
        return member


def how_it_ended(engine: Engine, signup_id: str) -> ErrorCode:
    """The refusal for a signup that has ended (the store has the last word on it):
    registered, declined by the circle account holder, or otherwise closed."""
    with Session(engine) as session:
        signup = session.get(PointSignup, signup_id)
        status = signup.status if signup is not None else None
    if status == "registered":
        return ErrorCode.SIGNUP_COMPLETED
    if status == "declined":
        return ErrorCode.HOLDER_DECLINED
    return ErrorCode.SIGNUP_CLOSED
