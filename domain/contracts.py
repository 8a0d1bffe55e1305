"""Inputs and results of the workflows, their messages, and the activities.

One model per message; new fields get defaults so that histories recorded before a field
existed still decode. No model here carries a password, and the enrollment models carry no
personal data at all: the mail activity looks the recipient up in the store by account ID.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from domain.journey import JST, GatewayReason, IneligibleReason, ReminderPolicy, Stage
from domain.values import GatewayId


class TermsDocument(BaseModel):
    """A document a customer agrees to; a new version needs a new consent."""

    document: str
    version: str
    content_sha256: str
    url: str


class EnrollmentInput(BaseModel):
    account_id: str
    circle_terms: TermsDocument
    points_signup_url: str
    reminders: ReminderPolicy = Field(default_factory=ReminderPolicy)


class ApplicationState(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    CANCELLED = "cancelled"


class GatewayView(BaseModel):
    gateway_id: str
    pcs_serial: str
    model: str
    eligible: bool
    reasons: list[GatewayReason] = Field(default_factory=list)
    application: ApplicationState = ApplicationState.NONE
    applied_at: datetime | None = None
    cancelled_at: datetime | None = None


class EligibilityResult(BaseModel):
    """What the registry knows about an account, and the verdict."""

    eligible: bool
    reason: IneligibleReason | None = None
    gateways: list[GatewayView] = Field(default_factory=list)


class ConsentRequest(BaseModel):
    """Update ``give_consent``: the customer pressed 同意する on this terms version."""

    terms_version: str
    channel: str = "web"


class ConsentResult(BaseModel):
    stage: Stage
    consented_at: datetime


class DeclineResult(BaseModel):
    stage: Stage
    declined_at: datetime


class RecordConsentInput(BaseModel):
    key: str
    account_id: str
    terms: TermsDocument
    decision: Literal["agreed", "declined"]
    decided_at: datetime
    channel: str


class ApplyRequest(BaseModel):
    """Update ``apply_gateway``: 申込確定 for one gateway."""

    gateway_id: GatewayId


class ApplicationReceipt(BaseModel):
    """What the completion screen (申込完了) shows."""

    gateway_id: str
    pcs_serial: str
    applied_at: datetime
    points_signup_url: str

    @property
    def applied_at_jst(self) -> str:
        return format_jst(self.applied_at)


class RecordApplicationInput(BaseModel):
    key: str
    account_id: str
    gateway_id: str
    applied_at: datetime


class RecordedApplication(BaseModel):
    gateway_id: str
    pcs_serial: str
    applied_at: datetime
    gateways: list[GatewayView]


class CancelRequest(BaseModel):
    """Update ``cancel_application``: 解約 of one gateway's application."""

    gateway_id: GatewayId


class CancelReceipt(BaseModel):
    gateway_id: str
    cancelled_at: datetime
    stage: Stage


class CancelApplicationInput(BaseModel):
    key: str
    account_id: str
    gateway_id: str
    cancelled_at: datetime


class PointsRegistered(BaseModel):
    """Signal ``points_registered`` from the points signup: the membership exists."""

    gateway_id: str
    registered_at: datetime


class EnrollmentStatus(BaseModel):
    """Query ``get_status``: everything the front end and operators need to see."""

    stage: Stage
    stage_entered_at: datetime
    ineligible_reason: IneligibleReason | None = None
    gateways: list[GatewayView] = Field(default_factory=list)
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None
    dormant: bool = False
    circle_terms_version: str = ""
    points_member_gateway_id: str | None = None


class EnrollmentResult(BaseModel):
    stage: Stage
    ineligible_reason: IneligibleReason | None = None


class MailKind(StrEnum):
    INVITATION = "invitation"
    APPLICATION_COMPLETE = "application_complete"
    APPLICATION_CANCELLED = "application_cancelled"
    REMINDER = "reminder"
    SIGNUP_LINK = "signup_link"
    SIGNUP_ALREADY_MEMBER = "signup_already_member"
    SIGNUP_EXPIRED = "signup_expired"
    SIGNUP_REMINDER = "signup_reminder"
    SIGNUP_COMPLETE = "signup_complete"


class MailRequest(BaseModel):
    """One mail to an account, or to a points signup's address. ``key`` is its idempotency
    key (and Message-ID seed)."""

    key: str
    kind: MailKind
    account_id: str | None = None
    signup_id: str | None = None
    context: dict[str, str] = Field(default_factory=dict)


class MailReceipt(BaseModel):
    key: str
    message_id: str
    already_sent: bool = False


def format_jst(moment: datetime) -> str:
    """The guide's date-time format, on the JST clock: ``2022/06/20 19:25``."""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")
