"""Activities of the スマイルeポイント member's side (``workflows/member.py``).

``issue_email_change`` makes the change link's token, keeps only its hash, and mails the
link itself, so the token never passes through the workflow nor the outbox. A new
address that is already a member's is mailed a neutral note instead: the member's answer
is the same either way (no enumeration).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity

from activities.enrollment import refuse_on_rule
from activities.mail import MailActivities
from domain.jst import format_jst
from domain.mail import MailKind, MailRequest
from domain.member import (
    ApplyEmailChangeInput,
    CancelMembershipInput,
    EmailChanged,
    EmailChangeIssued,
    EmailChangeState,
    ExpireEmailChangeInput,
    IssueEmailChangeInput,
    MembershipCancelled,
)
from store import member as member_store
from store import signup as signup_store
from store.enrollment import as_utc


class MemberActivities:
    def __init__(self, engine: Engine, mail: MailActivities, change_url: str) -> None:
        self._engine = engine
        self._mail = mail
        self._change_url = change_url

    @activity.defn
    async def issue_email_change(self, inp: IssueEmailChangeInput) -> EmailChangeIssued:
        token, state = await asyncio.to_thread(
            lambda: refuse_on_rule(lambda: member_store.issue_email_change(self._engine, inp))
        )
        key = f"member-email-change:{inp.change_id}"
        if state is EmailChangeState.TAKEN:
            await self._mail.deliver(
                MailRequest(
                    key=key, kind=MailKind.MEMBER_EMAIL_CHANGE_TAKEN, email_change_id=inp.change_id
                )
            )
        elif token is not None:
            await self._mail.deliver(
                MailRequest(
                    key=key,
                    kind=MailKind.MEMBER_EMAIL_CHANGE_LINK,
                    email_change_id=inp.change_id,
                    context={"expires_at": format_jst(inp.expires_at)},
                ),
                secret={"link_url": f"{self._change_url}#{token}"},
            )
            await asyncio.to_thread(
                member_store.mark_email_change_mailed, self._engine, inp.change_id
            )
        return EmailChangeIssued(change_id=inp.change_id, expires_at=inp.expires_at)

    @activity.defn
    def apply_email_change(self, inp: ApplyEmailChangeInput) -> EmailChanged:
        change_id = refuse_on_rule(lambda: member_store.apply_email_change(self._engine, inp))
        return EmailChanged(change_id=change_id, changed_at=inp.at)

    @activity.defn
    def expire_email_change(self, inp: ExpireEmailChangeInput) -> None:
        member_store.expire_email_change(self._engine, inp.change_id, inp.at)

    @activity.defn
    def cancel_membership(self, inp: CancelMembershipInput) -> MembershipCancelled:
        email = refuse_on_rule(lambda: member_store.email_of(self._engine, inp.member_id))
        member = signup_store.cancel_member(self._engine, email, inp.at)
        return MembershipCancelled(cancelled_at=as_utc(member.cancelled_at or inp.at))
