"""Activities of the points signup: links, the gateway check, registration, release.

A link is recorded (``record_link``: the store keeps its number, salt and the token's
hash) before it is mailed (``send_link``), in two activities: the workflow knows the link
before the mail can reach anyone, and a slow or absent relay never holds an update. The
token is derived from the server's link key inside the activities, so it never passes
through the workflow (whose history is stored) nor the outbox, and every retry of a mail
carries the same link.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.enrollment import refuse_on_rule
from activities.mail import MailActivities
from domain.ids import signup_workflow_id
from domain.jst import format_jst
from domain.mail import MailKind, MailRequest
from domain.signup import (
    GatewayMatch,
    IssueLinkInput,
    LinkIssued,
    LinkMailed,
    MatchGatewayInput,
    RecordLinkInput,
    Registered,
    RegisterMemberInput,
    ReleaseSignupInput,
    SendLinkInput,
)
from store import signup as signup_store


class SignupActivities:
    def __init__(
        self, engine: Engine, mail: MailActivities, registration_url: str, link_key: bytes
    ) -> None:
        self._engine = engine
        self._mail = mail
        self._registration_url = registration_url
        self._link_key = link_key

    @activity.defn
    def record_link(self, inp: RecordLinkInput) -> LinkIssued:
        """A short store write (run as a local activity inside the ``request_link`` update)."""
        issued = signup_store.record_link(self._engine, self._link_key, inp)
        metrics.LINKS_ISSUED.inc()
        return issued

    @activity.defn
    async def send_link(self, inp: SendLinkInput) -> LinkMailed:
        """Mail a recorded link; its URL is built here from the re-derived token."""
        try:
            link = await asyncio.to_thread(
                signup_store.link_to_mail, self._engine, self._link_key, inp.signup_id, inp.seq
            )
        except signup_store.LinkKeyMismatch:
            raise ApplicationError(
                "the link cannot be re-derived (link key changed)",
                type="link_key_changed",
                non_retryable=True,
            ) from None
        if not link.current or link.expires_at <= datetime.now(UTC):
            return LinkMailed(seq=inp.seq, outcome="not_sent")
        receipt = await self._mail.deliver(
            self._link_mail(inp.signup_id, inp.seq, link.expires_at),
            secret={"link_url": f"{self._registration_url}#{link.token}"},
        )
        await asyncio.to_thread(signup_store.mark_link_mailed, self._engine, inp.signup_id, inp.seq)
        return LinkMailed(seq=inp.seq, outcome="already_sent" if receipt.already_sent else "sent")

    @activity.defn
    async def issue_link(self, inp: IssueLinkInput) -> LinkIssued:
        """Record and mail in one (runs recorded before ``record_link``/``send_link``)."""
        token, issued = await asyncio.to_thread(
            signup_store.issue_link, self._engine, self._link_key, inp
        )
        if token is None:
            return issued  # mailed on an earlier attempt
        await self._mail.deliver(
            self._link_mail(inp.signup_id, inp.seq, issued.expires_at),
            secret={"link_url": f"{self._registration_url}#{token}"},
        )
        await asyncio.to_thread(signup_store.mark_link_mailed, self._engine, inp.signup_id, inp.seq)
        metrics.LINKS_ISSUED.inc()
        return issued

    @staticmethod
    def _link_mail(signup_id: str, seq: int, expires_at: datetime) -> MailRequest:
        return MailRequest(
            key=f"{signup_workflow_id(signup_id)}:link:{seq}",
            kind=MailKind.SIGNUP_LINK,
            signup_id=signup_id,
            context={"expires_at": format_jst(expires_at)},
        )

    @activity.defn
    def match_gateway(self, inp: MatchGatewayInput) -> GatewayMatch:
        # Only for signups whose STEP3 ran before patch "holder-confirmation"; new ones
        # use HolderActivities.check_gateway (limits on wrong pairs).
        return refuse_on_rule(
            lambda: signup_store.match_applied_gateway(self._engine, inp.gateway_id, inp.pcs_serial)
        )

    @activity.defn
    def register_member(self, inp: RegisterMemberInput) -> Registered:
        member = refuse_on_rule(lambda: signup_store.register_member(self._engine, inp))
        metrics.REGISTRATIONS.inc()
        return Registered(
            gateway_id=member.gateway_id, registered_at=inp.registered_at, name=inp.info.name
        )

    @activity.defn
    def release_signup(self, inp: ReleaseSignupInput) -> None:
        signup_store.release_signup(self._engine, inp.signup_id, inp.released_at)
        metrics.SIGNUPS_RELEASED.inc()
