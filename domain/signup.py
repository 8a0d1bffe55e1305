"""Contracts of SignupWorkflow and its activities (the スマイルeポイント signup).

The workflow never sees a link token (only its SHA-256) nor a password (only its argon2id
hash); the personal data it does carry (customer information) is encrypted by the payload
codec. The e-mail address stays in the store: activities look it up by signup ID.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from domain.customer import CustomerInfo
from domain.errors import ErrorCode
from domain.jst import QuietHours, lift_quiet_hours
from domain.terms import TermsDocument
from domain.values import GatewayId, PcsSerial


class Service(StrEnum):
    """STEP1: the service in use. Only the OMRON path is handled by this system."""

    OMRON_MONITORING = "omron_monitoring"
    CHIKUDEN_ECO_MEGANE = "chikuden_eco_megane"


class LinkStatus(StrEnum):
    """Query ``link_state``: ``valid``, or the code of the refusal the link would get."""

    VALID = "valid"
    LINK_UNKNOWN = ErrorCode.LINK_UNKNOWN.value
    LINK_EXPIRED = ErrorCode.LINK_EXPIRED.value
    LINK_REPLACED = ErrorCode.LINK_REPLACED.value
    LINK_USED = ErrorCode.LINK_USED.value
    SIGNUP_COMPLETED = ErrorCode.SIGNUP_COMPLETED.value
    SIGNUP_CLOSED = ErrorCode.SIGNUP_CLOSED.value


class LinkView(BaseModel):
    """Query ``link_view``: the link page's one answer, ``link_state`` and, for a valid
    link, when it expires."""

    state: LinkStatus
    expires_at: datetime | None = None


class SignupStatus(StrEnum):
    AWAITING_OPEN = "awaiting_open"  # a link is out, not yet used
    LINK_EXPIRED = "link_expired"  # it expired unused; waiting for a new request
    IN_PROGRESS = "in_progress"  # the link was used; steps under way
    REGISTERED = "registered"
    ABANDONED = "abandoned"
    HOLDER_DECLINED = "holder_declined"  # the circle account holder did not confirm it
    ALREADY_MEMBER = "already_member"  # the address is a member (or was): told by mail
    CANCELLED = "cancelled"  # an operator ended it; the address is free again

    @property
    def is_final(self) -> bool:
        return self in (
            SignupStatus.REGISTERED,
            SignupStatus.ABANDONED,
            SignupStatus.ALREADY_MEMBER,
            SignupStatus.HOLDER_DECLINED,
            SignupStatus.CANCELLED,
        )


class HolderConfirmation(StrEnum):
    """Where the account holder's confirmation of a signup stands (STEP5 shows it)."""

    NOT_NEEDED = "not_needed"  # the signup's e-mail is the circle account's own
    PENDING = "pending"  # mailed to the holder; register waits
    CONFIRMED = "confirmed"
    EXPIRED = "expired"  # not answered in time: the signup may ask again
    DECLINED = "declined"  # the signup has ended


class SignupPolicy(BaseModel):
    """The signup's clock. The defaults here are the only ones (``config.Settings.signup``
    reads overrides); texts render ``link_ttl``, never a number of their own."""

    link_ttl: timedelta = timedelta(hours=24)
    resend_cooldown: timedelta = timedelta(minutes=1)
    resend_daily_cap: int = 5
    idle_reminder_after: timedelta = timedelta(days=2)
    abandon_after: timedelta = timedelta(days=7)
    # Knowing the two IDs is not enough (domain/holder.py): wrong pairs per signup before
    # it is locked, per gateway across signups in 24 hours before the gateway is refused;
    # the holder's confirmation: how long it may take, how often a signup may ask, how
    # many requests one gateway's holder gets in 24 hours.
    gateway_tries: int = 5
    gateway_failures_per_day: int = 10
    holder_confirmation_ttl: timedelta = timedelta(hours=24)
    holder_asks: int = 3
    holder_asks_per_gateway_per_day: int = 3


class SignupInput(BaseModel):
    signup_id: str
    already_member: bool = False
    service_terms: TermsDocument
    privacy_policy: TermsDocument
    policy: SignupPolicy
    # The idle reminder is never sent in these hours (JST); it waits for their end.
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    mail_task_queue: str | None = None  # as in EnrollmentInput

    @model_validator(mode="before")
    @classmethod
    def _recorded_before_quiet_hours(cls, data: Any) -> Any:
        return lift_quiet_hours(data, "policy")


class LinkIssued(BaseModel):
    """What the workflow learns of a link: never the token itself."""

    seq: int
    token_sha256: str
    issued_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class IssueLinkInput(BaseModel):
    signup_id: str
    seq: int
    issued_at: datetime
    ttl: timedelta

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + self.ttl


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
    """STEP2's agreement, to the versions the customer was shown. ``current_*`` are the
    documents the API serves now: a signup started before a revision agrees to those (the
    ledger records them), instead of being refused forever."""

    service_terms_version: str
    privacy_policy_version: str
    current_service_terms: TermsDocument | None = None
    current_privacy_policy: TermsDocument | None = None


class GatewayEntry(SessionRequest):
    gateway_id: GatewayId
    pcs_serial: PcsSerial


class MatchGatewayInput(BaseModel):
    """Activity ``match_gateway``: the pair typed in STEP 3."""

    gateway_id: str
    pcs_serial: str


class GatewayMatch(BaseModel):
    gateway_id: str
    pcs_serial: str
    account_id: str


class CustomerEntry(SessionRequest):
    info: CustomerInfo
    password_hash: str


class RegisterRequest(SessionRequest):
    pass


class RegisterMemberInput(BaseModel):
    signup_id: str
    service: Service
    gateway: GatewayMatch
    info: CustomerInfo
    password_hash: str
    agreed: list[tuple[TermsDocument, datetime]]
    registered_at: datetime


class ReleaseSignupInput(BaseModel):
    """Activity ``release_signup``: the abandoned signup gives its address back."""

    signup_id: str
    released_at: datetime


class Registered(BaseModel):
    gateway_id: str
    registered_at: datetime
    # The completion screen's 氏名 … 様, so the API needs no query after the update.
    # Empty in results recorded before it was added.
    name: str = ""


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
    info: CustomerInfo | None = None
    password: str | None = None  # "********" once entered, never the hash
    registered_at: datetime | None = None
    # Set once STEP3 matched: whether the circle account holder must confirm, and where
    # that stands (register waits for it); the lock after too many wrong pairs.
    holder_confirmation: HolderConfirmation | None = None
    holder_confirmation_expires_at: datetime | None = None
    gateway_entry_locked: bool = False
    # A mail (or a store write) failed for good: an operator should look at this signup.
    needs_operator: bool = False
