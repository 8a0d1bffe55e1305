"""The スマイルeポイント member's side after registration: 照会, change of e-mail, 解約.

Contracts between the API, ``MemberWorkflow`` and ``MemberActivities``. No address, token
or password is in any of them: the new address is written to the store by the API, the
token is made and mailed by an activity, and the workflow sees only IDs and hashes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel


class MemberStatus(StrEnum):
    ACTIVE = "active"
    # the circle application of the member's gateway was cancelled (解約): no points accrue
    # until the gateway is applied for again; the membership itself is kept
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"  # the tombstone: never re-joins


class EmailChangeState(StrEnum):
    PENDING = "pending"  # link mailed, not used, not expired
    TAKEN = "taken"  # the address was a member's: a neutral mail, no link
    REPLACED = "replaced"  # a newer request was made
    USED = "used"  # confirmed: the member's address changed
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the membership was cancelled meanwhile


class MemberPolicy(BaseModel):
    """How long a change-of-e-mail link stays valid (``ECOKATSU_SIGNUP_LINK_TTL``: the
    same rule as the signup link)."""

    link_ttl: timedelta = timedelta(hours=24)


class MemberInput(BaseModel):
    member_id: int
    policy: MemberPolicy = MemberPolicy()
    mail_task_queue: str | None = None  # as in domain.enrollment.EnrollmentInput


class EmailChangeRequest(BaseModel):
    """The API has recorded the requested address under ``change_id``."""

    change_id: str


class IssueEmailChangeInput(BaseModel):
    member_id: int
    change_id: str
    requested_at: datetime
    expires_at: datetime


class EmailChangeIssued(BaseModel):
    change_id: str
    expires_at: datetime


class ConfirmEmailChange(BaseModel):
    change_id: str
    token_sha256: str


class ApplyEmailChangeInput(BaseModel):
    member_id: int
    change_id: str
    token_sha256: str
    at: datetime


class EmailChanged(BaseModel):
    change_id: str
    changed_at: datetime


class ExpireEmailChangeInput(BaseModel):
    change_id: str
    at: datetime


class CancelMembershipInput(BaseModel):
    member_id: int
    at: datetime


class MembershipCancelled(BaseModel):
    cancelled_at: datetime


class CircleCancelledInput(BaseModel):
    """The circle application of ``gateway_id`` was cancelled (from the journey)."""

    key: str
    account_id: str
    gateway_id: str
    at: datetime
