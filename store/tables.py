"""SQLModel tables.

Uniqueness rules live here, as database constraints, because Temporal's workflow-ID policy
only sees closed workflows within the namespace's retention:
- one *active* circle application per gateway (a partial unique index, on SQLite and
  PostgreSQL alike), so two concurrent applications cannot both succeed;
- one outbox row per mail idempotency key, so a retried mail activity never sends twice;
- one ledger row per consent request key, so a retried consent activity records once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    return uuid.uuid4().hex


class Account(SQLModel, table=True):
    """A monitoring-service account (遠隔モニタリングサービス). User ID is the e-mail."""

    __tablename__ = "monitoring_accounts"

    id: str = Field(default_factory=new_public_id, primary_key=True, max_length=32)
    email: str = Field(sa_column=sa.Column(sa.String(254), nullable=False, unique=True))
    password_hash: str = Field(max_length=255)
    display_name: str = Field(max_length=200)
    holder_type: str = Field(max_length=20)  # "individual" | "corporate"
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
    )


class Gateway(SQLModel, table=True):
    """A gateway as the monitoring registry knows it."""

    __tablename__ = "gateways"

    gateway_id: str = Field(primary_key=True, max_length=12)
    pcs_serial: str = Field(max_length=8)
    model: str = Field(max_length=40)
    pv_unit_in_use: bool
    battery_unit_in_use: bool
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    # Removed or exchanged for another (monitoring system): kept, because applications,
    # members and the event log refer to it.
    removed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Enrollment(SQLModel, table=True):
    """Maps an account to its journey's opaque workflow ID."""

    __tablename__ = "enrollments"

    account_id: str = Field(foreign_key="monitoring_accounts.id", primary_key=True, max_length=32)
    workflow_id: str = Field(unique=True, max_length=80)
    started_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
    )


class Consent(SQLModel, table=True):
    """The consent ledger: who agreed (or declined) to which version of which document.

    It outlives the workflow: the consent transfers the right to the CO2-reduction value.
    """

    __tablename__ = "consents"

    id: int | None = Field(default=None, primary_key=True)
    request_key: str = Field(unique=True, max_length=200)
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    document: str = Field(max_length=80)
    version: str = Field(max_length=40)
    content_sha256: str = Field(max_length=64)
    decision: str = Field(max_length=10)  # "agreed" | "declined"
    decided_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    channel: str = Field(max_length=20)


class CircleApplication(SQLModel, table=True):
    """One circle application (申込) of one gateway; cancelled ones stay as history."""

    __tablename__ = "circle_applications"
    __table_args__ = (
        sa.Index(
            "uq_circle_applications_active_gateway",
            "gateway_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_key: str = Field(unique=True, max_length=200)
    gateway_id: str = Field(foreign_key="gateways.gateway_id", index=True, max_length=12)
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    status: str = Field(max_length=10)  # "active" | "cancelled"
    applied_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    cancelled_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )


class OutboxMail(SQLModel, table=True):
    """Every mail, keyed by its idempotency key. ``sent`` rows are never sent again."""

    __tablename__ = "mail_outbox"

    key: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=40)
    # The recipient: a monitoring account, or a points signup (which has only an e-mail).
    account_id: str | None = Field(
        default=None, foreign_key="monitoring_accounts.id", index=True, max_length=32
    )
    signup_id: str | None = Field(
        default=None, foreign_key="point_signups.id", index=True, max_length=32
    )
    message_id: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    status: str = Field(max_length=10)  # "sending" | "sent" | "failed"
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
    )
    sent_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )


class PointSignup(SQLModel, table=True):
    """One スマイルeポイント signup, keyed by an opaque ID; its e-mail is reserved while
    it is pending (a partial unique index), so two signups never race for one address."""

    __tablename__ = "point_signups"
    __table_args__ = (
        sa.Index(
            "uq_point_signups_pending_email",
            "email",
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    id: str = Field(default_factory=new_public_id, primary_key=True, max_length=32)
    workflow_id: str = Field(unique=True, max_length=80)
    email: str = Field(max_length=254, index=True)
    status: str = Field(max_length=12)  # pending, registered, abandoned, refused, declined
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class SignupLink(SQLModel, table=True):
    """A signup link. Only the token's SHA-256 is stored, never the token.

    The token is derived (HMAC with the server's link key over signup, ``seq`` and
    ``salt``), so a retried mail carries the same link; the salt is not secret. ``seq``
    counts the signup's links here, not in a workflow, so a new run continues the count.
    ``request_key`` (the workflow's update ID) makes recording a link idempotent.
    """

    __tablename__ = "signup_links"
    __table_args__ = (
        sa.UniqueConstraint("signup_id", "seq"),
        sa.UniqueConstraint("request_key", name="uq_signup_links_request_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    signup_id: str = Field(foreign_key="point_signups.id", index=True, max_length=32)
    seq: int
    token_sha256: str = Field(unique=True, max_length=64)
    # NULL on links made before tokens were derived (their token was random).
    salt: str | None = Field(default=None, max_length=32)
    request_key: str | None = Field(default=None, max_length=200)
    issued_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    mailed: bool = False


class PointsMember(SQLModel, table=True):
    """A スマイルeポイント member. E-mail and gateway are unique for good: a cancelled
    member's row stays (status "cancelled") as the tombstone that stops a re-join."""

    __tablename__ = "points_members"

    id: int | None = Field(default=None, primary_key=True)
    signup_id: str = Field(foreign_key="point_signups.id", unique=True, max_length=32)
    email: str = Field(unique=True, max_length=254)
    gateway_id: str = Field(foreign_key="gateways.gateway_id", unique=True, max_length=12)
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    service: str = Field(max_length=20)
    name: str = Field(max_length=50)
    furigana: str = Field(max_length=50)
    postal_code: str = Field(max_length=8)
    prefecture: str = Field(max_length=4)
    address: str = Field(max_length=100)
    installation_postal_code: str | None = Field(default=None, max_length=8)
    installation_prefecture: str | None = Field(default=None, max_length=4)
    installation_address: str | None = Field(default=None, max_length=100)
    phone: str = Field(max_length=15)
    password_hash: str = Field(max_length=255)
    status: str = Field(max_length=10)  # "active" | "cancelled"
    registered_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    cancelled_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The circle application of this gateway was cancelled (解約): the membership is
    # suspended (no points accrue) until the gateway is applied for again. Kept apart from
    # ``status`` so that "is a member" (a row, active) keeps one meaning for the signup.
    circle_cancelled_at: datetime | None = Field(
        default=None, sa_type=sa.DateTime(timezone=True), index=True
    )


class MemberEmailChange(SQLModel, table=True):
    """A member's request to change the registered e-mail, confirmed by a link mailed to
    the new address. Only the token's SHA-256 is stored. One pending request per member
    (a partial unique index): a newer request replaces the older one."""

    __tablename__ = "member_email_changes"
    __table_args__ = (
        sa.Index(
            "uq_member_email_changes_pending_member",
            "member_id",
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    id: str = Field(default_factory=new_public_id, primary_key=True, max_length=32)
    member_id: int = Field(foreign_key="points_members.id", index=True)
    new_email: str = Field(max_length=254)
    old_email: str | None = Field(default=None, max_length=254)  # set when it is used
    # null until the link is issued; never set for a taken address (no link is mailed)
    token_sha256: str | None = Field(default=None, unique=True, max_length=64)
    # requested, pending, taken, replaced, used, expired, cancelled (domain.member)
    status: str = Field(max_length=10)
    requested_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    mailed: bool = False


class JourneyStart(SQLModel, table=True):
    """The outbox of journey starts: one row per announced account, written in the same
    transaction as the account, so an account never exists without a promise to start its
    journey. ``pending`` rows are started by the API at once (best effort) or, when the
    Temporal server was unreachable, by the reconciler in every worker. Whoever starts one
    first holds its lease (``lease_until``); the workflow-ID policy makes a second start a
    no-op if a lease ever runs out mid-start."""

    __tablename__ = "journey_starts"

    account_id: str = Field(foreign_key="monitoring_accounts.id", primary_key=True, max_length=32)
    status: str = Field(max_length=10, index=True)  # "pending" | "started"
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The kind of failure (an RPC status name or an exception class), never a message:
    # messages may quote the request.
    last_error: str | None = Field(default=None, max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    started_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class GatewayEntryFailure(SQLModel, table=True):
    """A wrong gateway/serial pair entered at STEP3. Counted per entered gateway ID over
    24 hours, across signups and API instances, to refuse a gateway being probed."""

    __tablename__ = "gateway_entry_failures"
    __table_args__ = (
        sa.Index("ix_gateway_entry_failures_gateway_time", "gateway_id", "failed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # signup and attempt number: a retried activity records its failure once
    request_key: str = Field(unique=True, max_length=200)
    gateway_id: str = Field(max_length=12)  # as entered: it need not exist
    signup_id: str = Field(foreign_key="point_signups.id", index=True, max_length=32)
    failed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class HolderConfirmationRequest(SQLModel, table=True):
    """A request to the circle account holder to confirm a points signup on their gateway.

    Only the confirmation token's SHA-256 is stored; the token itself is derived from a
    server key and ``salt`` when the mail is sent, so a retried mail carries the same link.
    The decision (and its channel) stays here after Temporal's retention.
    """

    __tablename__ = "holder_confirmations"
    __table_args__ = (sa.UniqueConstraint("signup_id", "seq"),)

    id: str = Field(default_factory=new_public_id, primary_key=True, max_length=32)
    signup_id: str = Field(foreign_key="point_signups.id", index=True, max_length=32)
    seq: int
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    gateway_id: str = Field(foreign_key="gateways.gateway_id", index=True, max_length=12)
    token_sha256: str = Field(unique=True, max_length=64)
    salt: str = Field(max_length=32)
    status: str = Field(max_length=10)  # "pending" | "confirmed" | "declined" | "replaced"
    requested_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    decided_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    channel: str | None = Field(default=None, max_length=20)  # "mail_link" | "circle_session"


class Throttle(SQLModel, table=True):
    """One rate-limit counter (login failures, signup requests), shared by every API
    instance. ``key`` is an HMAC of what is counted (an address, a client), so the table
    holds no e-mail address or IP address. Times are epoch seconds: integer arithmetic in
    one upsert works the same on SQLite and PostgreSQL."""

    __tablename__ = "throttles"

    key: str = Field(primary_key=True, max_length=64)
    window_start: int = Field(sa_type=sa.BigInteger)
    count: int
    blocked_until: int = Field(default=0, sa_type=sa.BigInteger)
    expires_at: int = Field(sa_type=sa.BigInteger, index=True)  # purged after this


class SignupRequest(SQLModel, table=True):
    """A `POST /v1/points/signups` not yet handed to its signup workflow.

    The route only writes this row (the same work for a member and a stranger), answers,
    and a background task hands it over; a drainer retries rows whose hand-over failed or
    whose API process died. The row is deleted once handed over. ``id`` is the update ID,
    so a row handed over twice acts once."""

    __tablename__ = "signup_requests"

    id: str = Field(default_factory=new_public_id, primary_key=True, max_length=32)
    email: str = Field(max_length=254)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    attempts: int = 0
    # The signup this request opened, kept so a retried hand-over reuses it (and a
    # member's address is not counted, or mailed, twice for one request).
    signup_id: str | None = Field(default=None, max_length=32)
    already_member: bool = False
    # Epoch seconds until which one API process owns the row (a lease, not a lock).
    claimed_until: int = Field(default=0, sa_type=sa.BigInteger, index=True)


class Operator(SQLModel, table=True):
    """A person who runs the service (not the monitoring system): created by
    ``cli.py operator add``. ``role`` is ``viewer`` (read, decrypt in the UI) or
    ``operator`` (also act on journeys and signups). A disabled operator keeps the row, so
    the audit's names stay meaningful, and every credential of theirs is refused."""

    __tablename__ = "operators"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    role: str = Field(max_length=10)  # "viewer" | "operator"
    password_hash: str | None = Field(default=None, max_length=200)  # argon2id
    disabled_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class OperatorToken(SQLModel, table=True):
    """A personal API token: only its SHA-256 is stored (the token has 256 random bits,
    so a fast hash is enough, and a look-up by hash needs no per-row salt)."""

    __tablename__ = "operator_tokens"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", index=True)
    token_sha256: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class OperatorAudit(SQLModel, table=True):
    """Who did what to which workflow, and every refusal: one row per operator request
    (``store/audit.py``). ``operator`` is the name as presented, so a refused unknown name
    is recorded too; no personal data of customers goes here (workflow IDs are opaque)."""

    __tablename__ = "operator_audit"
    __table_args__ = (sa.Index("ix_operator_audit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    operator: str = Field(max_length=64, index=True)  # "" when no name could be told
    at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    action: str = Field(max_length=64)
    reason: str = Field(default="", max_length=500)
    workflow_id: str | None = Field(default=None, max_length=100, index=True)
    stage_before: str | None = Field(default=None, max_length=40)
    stage_after: str | None = Field(default=None, max_length=40)
    outcome: str = Field(max_length=40)  # "ok", or the refusal's error code


class GatewayEventRow(SQLModel, table=True):
    """A gateway change the monitoring system reported, once per event ID (a repeated
    event is recognised, not applied twice). It stays after the journey ended."""

    __tablename__ = "gateway_events"

    event_id: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="monitoring_accounts.id", index=True, max_length=32)
    kind: str = Field(max_length=20)  # added, exchanged, removed, units_changed
    gateway_id: str = Field(max_length=12)
    new_gateway_id: str | None = Field(default=None, max_length=12)
    pv_unit_in_use: bool | None = None
    battery_unit_in_use: bool | None = None
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class JourneyStatusRow(SQLModel, table=True):
    """Where a customer's journey stands, as its workflow last published it (the answer of
    ``get_status``), so ``GET /v1/journey`` reads one row instead of querying the worker.

    Written only by the journey's workflow (a local activity after each change); a write
    lands only if it is newer than the row: ``(published_at, seq)`` grows within a run and
    across runs (``published_at`` is the workflow's clock, later in every later run).
    """

    __tablename__ = "journey_status"

    account_id: str = Field(foreign_key="monitoring_accounts.id", primary_key=True, max_length=32)
    run_id: str = Field(max_length=64)  # the run that wrote it
    seq: int
    published_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    status: str = Field(sa_type=sa.Text)  # EnrollmentStatus as JSON: codes, times, gateways
