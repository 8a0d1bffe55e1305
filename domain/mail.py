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
    # an operator ended it (domain/operators.py); the operator's reason is not mailed
    JOURNEY_CANCELLED = "journey_cancelled"  # to the circle account
    SIGNUP_CANCELLED = "signup_cancelled"  # to the signup's address
    # the member's side (domain/member.py)
    MEMBER_EMAIL_CHANGE_LINK = "member_email_change_link"  # to the new address: the link
    MEMBER_EMAIL_CHANGE_TAKEN = "member_email_change_taken"  # to the new address: neutral
    MEMBER_EMAIL_CHANGED = "member_email_changed"  # to the new address: done
    MEMBER_EMAIL_CHANGED_NOTICE = "member_email_changed_notice"  # to the old address
    MEMBER_CANCELLED = "member_cancelled"  # 退会手続き完了
    MEMBER_CIRCLE_CANCELLED = "member_circle_cancelled"  # the circle 解約 suspends points
    # the journey's long life (the monitoring system, a terms revision)
    GATEWAY_CHANGED = "gateway_changed"  # an applied gateway changed (monitoring system)
    TERMS_REVISED = "terms_revised"  # the member terms were revised


class Brand(StrEnum):
    """Whose mail it is, so whose sender it carries (``ECOKATSU_MAIL_FROM`` /
    ``ECOKATSU_POINTS_MAIL_FROM``)."""

    CIRCLE = "circle"  # 遠隔モニタリングサービス: the circle and the monitoring account
    POINTS = (
        "points"  # 株式会社NTTスマイルエナジー: what a スマイルeポイント (would-be) member gets
    )


# The one place that decides each kind's sender. The guide (p. 10) tells customers to allow
# @nttse.com and shows noreply_cr@nttse.com as the sender of the points mails: every mail to
# a points signup's or member's address is NTT Smile Energy's. The two mails to the circle
# account holder about a points signup on their gateway stay ours: they go to the
# monitoring account, about its gateway, and their link is on the monitoring site.
BRAND_OF: dict[MailKind, Brand] = {
    MailKind.INVITATION: Brand.CIRCLE,
    MailKind.APPLICATION_COMPLETE: Brand.CIRCLE,
    MailKind.APPLICATION_CANCELLED: Brand.CIRCLE,
    MailKind.REMINDER: Brand.CIRCLE,
    MailKind.SIGNUP_LINK: Brand.POINTS,
    MailKind.SIGNUP_ALREADY_MEMBER: Brand.POINTS,
    MailKind.SIGNUP_EXPIRED: Brand.POINTS,
    MailKind.SIGNUP_REMINDER: Brand.POINTS,
    MailKind.SIGNUP_COMPLETE: Brand.POINTS,
    MailKind.HOLDER_CONFIRMATION: Brand.CIRCLE,
    MailKind.HOLDER_CONFIRMED: Brand.POINTS,
    MailKind.HOLDER_DECLINED: Brand.POINTS,
    MailKind.HOLDER_CONFIRMATION_EXPIRED: Brand.POINTS,
    MailKind.POINTS_REGISTERED_NOTICE: Brand.CIRCLE,
    MailKind.MEMBER_EMAIL_CHANGE_LINK: Brand.POINTS,
    MailKind.MEMBER_EMAIL_CHANGE_TAKEN: Brand.POINTS,
    MailKind.MEMBER_EMAIL_CHANGED: Brand.POINTS,
    MailKind.MEMBER_EMAIL_CHANGED_NOTICE: Brand.POINTS,
    MailKind.MEMBER_CANCELLED: Brand.POINTS,
    MailKind.MEMBER_CIRCLE_CANCELLED: Brand.POINTS,
    MailKind.JOURNEY_CANCELLED: Brand.CIRCLE,
    MailKind.SIGNUP_CANCELLED: Brand.POINTS,
    MailKind.GATEWAY_CHANGED: Brand.CIRCLE,
    MailKind.TERMS_REVISED: Brand.CIRCLE,
}


def brand_of(kind: MailKind) -> Brand:
    return BRAND_OF[kind]


class MailRequest(BaseModel):
    """One mail to an account, or to a points signup's address. ``key`` is its idempotency
    key (and Message-ID seed)."""

    key: str
    kind: MailKind
    account_id: str | None = None
    signup_id: str | None = None
    # a スマイルeポイント member's current address; or a change of e-mail's new address
    # (its old one with ``to_old_address``)
    member_id: int | None = None
    email_change_id: str | None = None
    to_old_address: bool = False
    context: dict[str, str] = Field(default_factory=dict)


class MailReceipt(BaseModel):
    key: str
    message_id: str
    already_sent: bool = False
