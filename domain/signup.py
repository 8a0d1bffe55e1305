"""Contracts of SignupWorkflow and its activities (the スマイルeポイント signup).

The workflow never sees a link token (only its SHA-256) nor a password (only its argon2id
hash); the personal data it does carry (customer information) is encrypted by the payload
codec. The e-mail address stays in the store: activities look it up by signup ID.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.customer import CustomerRecord
from domain.terms import TermsDocument
from domain.values import GatewayId, PcsSerial


class Service(StrEnum):
    """STEP1: the service in use. Only the OMRON path is handled by this system."""

    OMRON_MONITORING = "omron_monitoring"
    CHIKUDEN_ECO_MEGANE = "chikuden_eco_megane"


class SignupStatus(StrEnum):
    AWAITING_OPEN = "awaiting_open"  # a link is out, not yet used
    LINK_EXPIRED = "link_expired"  # it expired unused; waiting for a new request
    IN_PROGRESS = "in_progress"  # the link was used; steps under way
    REGISTERED = "registered"
    ABANDONED = "abandoned"
    ALREADY_MEMBER = "already_member"  # the address is a member (or was): told by mail

    @property
    def is_final(self) -> bool:
        return self in (
            SignupStatus.REGISTERED,
            SignupStatus.ABANDONED,
            SignupStatus.ALREADY_MEMBER,
        )


class SignupPolicy(BaseModel):
    link_ttl: timedelta = timedelta(hours=24)
    resend_cooldown: timedelta = timedelta(minutes=1)
    resend_daily_cap: int = 5
    idle_reminder_after: timedelta = timedelta(days=2)
    abandon_after: timedelta = timedelta(days=7)
    # The idle reminder is never sent in these hours (JST); it waits for their end.
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)


class SignupInput(BaseModel):
    signup_id: str
    already_member: bool = False
    service_terms: TermsDocument
    privacy_policy: TermsDocument
    policy: SignupPolicy = Field(default_factory=SignupPolicy)


class LinkIssued(BaseModel):
    """What the workflow learns of a link: never the token itself."""

    seq: int
    token_sha256: str
    issued_at: datetime
    expires_at: datetime


class IssueLinkInput(BaseModel):
    signup_id: str
    seq: int
    issued_at: datetime
    ttl: timedelta


class RecordLinkInput(BaseModel):
    """Record the signup's next link (its number comes from the store). ``request_key``
    (the update's ID) makes a retry return the link already recorded."""

    signup_id: str
    request_key: str
    issued_at: datetime
    ttl: timedelta


class SendLinkInput(BaseModel):
    """Mail link ``seq`` of a signup; the activity derives the token (never the workflow)."""

    signup_id: str
    seq: int


class LinkMailed(BaseModel):
    """``sent``, ``already_sent``, or ``not_sent`` when a newer link replaced this one
    or it expired before the relay took it (mailing a dead link helps nobody)."""

    seq: int
    outcome: str


class RequestLinkResult(BaseModel):
    status: SignupStatus


class BeginRequest(BaseModel):
    """The first form submission (STEP1): spends the link's token."""

    token_sha256: str
    service: Service


class BeginResult(BaseModel):
    seq: int


class SessionRequest(BaseModel):
    """Every later step proves it belongs to the current link's session."""

    seq: int


class PresentDocument(SessionRequest):
    document: str


class AgreeRequest(SessionRequest):
    service_terms_version: str
    privacy_policy_version: str


class GatewayEntry(SessionRequest):
    gateway_id: GatewayId
    pcs_serial: PcsSerial


class GatewayMatch(BaseModel):
    gateway_id: str
    pcs_serial: str
    account_id: str


class CustomerEntry(SessionRequest):
    info: CustomerRecord
    password_hash: str


class RegisterRequest(SessionRequest):
    pass


class RegisterMemberInput(BaseModel):
    signup_id: str
    service: Service
    gateway: GatewayMatch
    info: CustomerRecord
    password_hash: str
    agreed: list[tuple[TermsDocument, datetime]]
    registered_at: datetime


class Registered(BaseModel):
    gateway_id: str
    registered_at: datetime


class SignupView(BaseModel):
    """Query ``get_signup``: the status and the confirmation screen (password masked)."""

    status: SignupStatus
    link_seq: int = 0
    link_expires_at: datetime | None = None
    service: Service | None = None
    documents_presented: list[str] = Field(default_factory=list)
    agreed: bool = False
    gateway_id: str | None = None
    pcs_serial: str | None = None
    info: CustomerRecord | None = None
    password: str | None = None  # "********" once entered, never the hash
    registered_at: datetime | None = None
    # A mail (or a store write) failed for good: an operator should look at this signup.
    needs_operator: bool = False
