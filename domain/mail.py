"""Mail requests: what workflows ask the mail activity to send."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


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
    # knowing the two IDs is not enough (domain/holder.py)
    HOLDER_CONFIRMATION = "holder_confirmation"  # to the circle account: confirm link
    HOLDER_CONFIRMED = "holder_confirmed"  # to the signup's address
    HOLDER_DECLINED = "holder_declined"  # to the signup's address, neutral
    HOLDER_CONFIRMATION_EXPIRED = "holder_confirmation_expired"  # to the signup's address
    POINTS_REGISTERED_NOTICE = "points_registered_notice"  # to the circle account
    GATEWAY_CHANGED = "gateway_changed"  # an applied gateway changed (monitoring system)
    TERMS_REVISED = "terms_revised"  # the member terms were revised


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
