"""Store operations of "knowing the two IDs is not enough" (see ``domain/holder.py``).

The counts that must span signups and API instances live here: wrong pairs per gateway
(a row per failure, counted over 24 hours) and confirmation requests per gateway. So do
the holder's confirmation requests (token hash, salt, decision): the rule is checked
again in ``store.signup.register_member``, inside the registering transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from domain.errors import ErrorCode
from domain.holder import (
    AskHolderInput,
    CheckGatewayInput,
    GatewayCheck,
    GatewayOutcome,
    HolderAsked,
    RecordHolderDecisionInput,
    mask_email,
)
from domain.signup import GatewayMatch
from store.enrollment import RuleViolation, gateway_standing
from store.tables import (
    Account,
    GatewayEntryFailure,
    HolderConfirmationRequest,
    PointSignup,
    new_public_id,
)

# "Per day": the window over which wrong pairs and confirmation requests are counted.
WINDOW = timedelta(hours=24)
_F = GatewayEntryFailure.__table__  # type: ignore[attr-defined]
# STEP3's throttle in one statement built once: was this attempt counted already, and how
# many wrong pairs the gateway had since ``since``.
_FAILURES = sa.select(
    sa.exists().where(_F.c.request_key == sa.bindparam("key")).label("counted"),
    sa.select(sa.func.count())
    .where(_F.c.gateway_id == sa.bindparam("gateway_id"), _F.c.failed_at > sa.bindparam("since"))
    .scalar_subquery()
    .label("recent"),
)


_A = Account.__table__  # type: ignore[attr-defined]
_H = HolderConfirmationRequest.__table__  # type: ignore[attr-defined]
_S = PointSignup.__table__  # type: ignore[attr-defined]
# The holder's answer: decided only while pending (RETURNING: whether it was).
_DECIDE = (
    sa.update(_H)
    .where(
        _H.c.id == sa.bindparam("b_id"),
        _H.c.signup_id == sa.bindparam("b_signup_id"),
        _H.c.status == "pending",
    )
    .values(
        status=sa.bindparam("b_status"),
        decided_at=sa.bindparam("b_at"),
        channel=sa.bindparam("b_channel"),
    )
    .returning(_H.c.id)
)
_DECISION_STATE = sa.select(_H.c.signup_id, _H.c.status).where(
    _H.c.id == sa.bindparam("confirmation_id")
)
_DECLINE_SIGNUP = (
    sa.update(_S)
    .where(_S.c.id == sa.bindparam("b_signup_id"), _S.c.status == "pending")
    .values(status="declined", closed_at=sa.bindparam("b_at"))
)
# ``ask_holder``'s statements.
_ASK_EMAILS = (
    sa.select(_S.c.email.label("signup_email"), _A.c.email.label("account_email"))
    .select_from(_S.join(_A, _A.c.id == sa.bindparam("account_id")))
    .where(_S.c.id == sa.bindparam("signup_id"))
)
_REQUEST_OF_SEQ = sa.select(_H.c.id, _H.c.seq, _H.c.expires_at).where(
    _H.c.signup_id == sa.bindparam("signup_id"), _H.c.seq == sa.bindparam("seq")
)
_ASKED_LATELY = sa.select(sa.func.count()).where(
    _H.c.gateway_id == sa.bindparam("gateway_id"), _H.c.requested_at > sa.bindparam("since")
)
_REPLACE_PENDING = (
    sa.update(_H)
    .where(_H.c.signup_id == sa.bindparam("b_signup_id"), _H.c.status == "pending")
    .values(status="replaced")
)
_INSERT_REQUEST = sa.insert(_H)
# One request as the pages show it: the request and its signup's address, one statement.
_FACTS = sa.select(
    _H.c.id,
    _H.c.signup_id,
    _H.c.account_id,
    _H.c.gateway_id,
    _H.c.status,
    _H.c.requested_at,
    _H.c.expires_at,
    _H.c.salt,
    _S.c.email,
).select_from(_H.outerjoin(_S, _S.c.id == _H.c.signup_id))
_FACTS_BY_ID = _FACTS.where(_H.c.id == sa.bindparam("confirmation_id"))
_FACTS_BY_TOKEN = _FACTS.where(_H.c.token_sha256 == sa.bindparam("token_sha256"))
_FACTS_PENDING = _FACTS.where(
    _H.c.account_id == sa.bindparam("account_id"), _H.c.status == "pending"
).order_by(_H.c.requested_at)


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; we store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def confirmation_token(key: bytes, confirmation_id: str, salt: str) -> str:
    """The link's token: derived, so a retried mail carries the same link, and the
    store needs only its hash (256 bits, URL-safe)."""
    mac = hmac.new(key, f"holder-confirmation:{confirmation_id}:{salt}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_address(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def check_gateway_entry(engine: Engine, inp: CheckGatewayInput) -> GatewayCheck:
    """STEP3: the pair must back a confirmed (active) circle application, no member yet.

    A gateway with too many wrong pairs in 24 hours is refused before the pair is looked
    at, so the refusal says nothing about whether the pair was right. A wrong serial and
    an unapplied gateway get the same answer, so the pair cannot be probed one half at a
    time.
    """
    with Session(engine) as session:
        failures = session.execute(
            _FAILURES,
            {"key": inp.attempt_key, "gateway_id": inp.gateway_id, "since": inp.at - WINDOW},
        ).one()
        if failures.counted:
            return GatewayCheck(outcome=GatewayOutcome.WRONG_PAIR)  # a retry: counted once
        if failures.recent >= inp.failures_per_day:
            return GatewayCheck(outcome=GatewayOutcome.GATEWAY_LOCKED)
        gateway = gateway_standing(session, inp.gateway_id)
        if gateway is None or not gateway.applied or gateway.pcs_serial != inp.pcs_serial:
            session.add(
                GatewayEntryFailure(
                    request_key=inp.attempt_key,
                    gateway_id=inp.gateway_id,
                    signup_id=inp.signup_id,
                    failed_at=inp.at,
                )
            )
            session.commit()
            return GatewayCheck(outcome=GatewayOutcome.WRONG_PAIR)
    if gateway.member:
        return GatewayCheck(outcome=GatewayOutcome.ALREADY_MEMBER)
    return GatewayCheck(
        outcome=GatewayOutcome.MATCHED,
        match=GatewayMatch(
            gateway_id=inp.gateway_id, pcs_serial=inp.pcs_serial, account_id=gateway.account_id
        ),
    )


def ask_holder(engine: Engine, inp: AskHolderInput, key: bytes) -> HolderAsked:
    """Open request ``seq`` of a signup (the previous one is replaced), or say that none
    is needed because the signup's e-mail is the circle account's own. Idempotent.

    Statements built once, no ORM session (STEP3's answer waits for this): the two
    addresses, then for a stranger's address the request of this number if a retry made
    it, the gateway's requests of the day, the older request replaced, the new one."""
    try:
        with engine.begin() as conn:
            return _ask(conn, inp, key)
    except sa.exc.IntegrityError:
        pass  # a concurrent retry of the same request won: the second try finds its answer
    with engine.begin() as conn:
        return _ask(conn, inp, key)


def _ask(conn: Connection, inp: AskHolderInput, key: bytes) -> HolderAsked:
    emails = conn.execute(
        _ASK_EMAILS, {"signup_id": inp.signup_id, "account_id": inp.gateway.account_id}
    ).first()
    if emails is None:
        raise RuleViolation(ErrorCode.SIGNUP_CLOSED)
    if same_address(emails.signup_email, emails.account_email):
        return HolderAsked(needed=False)
    existing = conn.execute(_REQUEST_OF_SEQ, {"signup_id": inp.signup_id, "seq": inp.seq}).first()
    if existing is not None:
        return _asked(existing.id, existing.seq, existing.expires_at)
    asked_lately = conn.execute(
        _ASKED_LATELY, {"gateway_id": inp.gateway.gateway_id, "since": inp.asked_at - WINDOW}
    ).scalar_one()
    if asked_lately >= inp.asks_per_gateway_per_day:
        raise RuleViolation(ErrorCode.HOLDER_ASK_LIMIT)
    conn.execute(_REPLACE_PENDING, {"b_signup_id": inp.signup_id})
    confirmation_id, salt = new_public_id(), secrets.token_hex(16)
    expires_at = inp.asked_at + inp.ttl
    conn.execute(
        _INSERT_REQUEST,
        {
            "id": confirmation_id,
            "signup_id": inp.signup_id,
            "seq": inp.seq,
            "account_id": inp.gateway.account_id,
            "gateway_id": inp.gateway.gateway_id,
            "token_sha256": token_hash(confirmation_token(key, confirmation_id, salt)),
            "salt": salt,
            "status": "pending",
            "requested_at": inp.asked_at,
            "expires_at": expires_at,
        },
    )
    return _asked(confirmation_id, inp.seq, expires_at)


def _asked(confirmation_id: str, seq: int, expires_at: datetime) -> HolderAsked:
    return HolderAsked(
        needed=True, confirmation_id=confirmation_id, seq=seq, expires_at=_utc(expires_at)
    )


def record_decision(engine: Engine, inp: RecordHolderDecisionInput) -> None:
    """The holder's answer; a decline closes the signup (its e-mail is free again).

    One conditional update decides (a pending request of this signup, and only one
    answer of two racing ones); only when it decides nothing is the request read, to say
    why: a retry of the same answer is done, another answer is ``confirmation_used``."""
    decided = "confirmed" if inp.confirm else "declined"
    with engine.begin() as conn:
        taken = conn.execute(
            _DECIDE,
            {
                "b_id": inp.confirmation_id,
                "b_signup_id": inp.signup_id,
                "b_status": decided,
                "b_at": inp.decided_at,
                "b_channel": inp.channel,
            },
        ).first()
        if taken is None:
            row = conn.execute(_DECISION_STATE, {"confirmation_id": inp.confirmation_id}).first()
            if row is None or row.signup_id != inp.signup_id:
                raise RuleViolation(ErrorCode.CONFIRMATION_UNKNOWN)
            if row.status == decided:
                return  # a retry
            raise RuleViolation(ErrorCode.CONFIRMATION_USED)
        if not inp.confirm:
            conn.execute(_DECLINE_SIGNUP, {"b_signup_id": inp.signup_id, "b_at": inp.decided_at})


# The holder rule's facts in one statement built once: the circle account's address, and
# whether its holder confirmed this signup on this gateway.
_HOLDER_RULE = sa.select(
    _A.c.email,
    sa.exists()
    .where(
        _H.c.signup_id == sa.bindparam("signup_id"),
        _H.c.gateway_id == sa.bindparam("gateway_id"),
        _H.c.account_id == _A.c.id,
        _H.c.status == "confirmed",
    )
    .label("confirmed"),
).where(_A.c.id == sa.bindparam("account_id"))


def holder_may_register(
    conn: Connection, signup_id: str, signup_email: str, gateway: GatewayMatch
) -> bool:
    """The rule, for ``register_member``'s transaction: the signup's e-mail is the circle
    account's own, or the holder confirmed this signup on this gateway."""
    row = conn.execute(
        _HOLDER_RULE,
        {
            "signup_id": signup_id,
            "gateway_id": gateway.gateway_id,
            "account_id": gateway.account_id,
        },
    ).first()
    return row is not None and (same_address(signup_email, row.email) or bool(row.confirmed))


@dataclass(frozen=True)
class ConfirmationFacts:
    """One request as the holder's page and mail show it (the address masked)."""

    confirmation_id: str
    signup_id: str
    account_id: str
    gateway_id: str
    masked_email: str
    status: str
    requested_at: datetime
    expires_at: datetime
    salt: str

    def refusal(self, now: datetime) -> ErrorCode | None:
        """Why this request can no longer be answered, if it cannot."""
        if self.status == "replaced":
            return ErrorCode.CONFIRMATION_REPLACED
        if self.status != "pending":
            return ErrorCode.CONFIRMATION_USED
        if now >= self.expires_at:
            return ErrorCode.CONFIRMATION_EXPIRED
        return None


def _facts(row: Any) -> ConfirmationFacts:
    return ConfirmationFacts(
        confirmation_id=row.id,
        signup_id=row.signup_id,
        account_id=row.account_id,
        gateway_id=row.gateway_id,
        masked_email=mask_email(row.email) if row.email is not None else "",
        status=row.status,
        requested_at=_utc(row.requested_at),
        expires_at=_utc(row.expires_at),
        salt=row.salt,
    )


def confirmation_by_id(engine: Engine, confirmation_id: str) -> ConfirmationFacts | None:
    with engine.connect() as conn:
        row = conn.execute(_FACTS_BY_ID, {"confirmation_id": confirmation_id}).first()
    return _facts(row) if row else None


def confirmation_for_token(engine: Engine, token: str) -> ConfirmationFacts | None:
    """The request a mailed token belongs to (looked up by the token's hash), with its
    signup's address: one statement built once (the holder's link and answer pages)."""
    with engine.connect() as conn:
        row = conn.execute(_FACTS_BY_TOKEN, {"token_sha256": token_hash(token)}).first()
    return _facts(row) if row else None


def pending_for_account(engine: Engine, account_id: str, now: datetime) -> list[ConfirmationFacts]:
    """The requests a logged-in holder can still answer, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(_FACTS_PENDING, {"account_id": account_id}).all()
    return [f for f in (_facts(r) for r in rows) if f.refusal(now) is None]


def signup_address(engine: Engine, signup_id: str) -> str | None:
    with Session(engine) as session:
        signup = session.get(PointSignup, signup_id)
        return signup.email if signup else None
