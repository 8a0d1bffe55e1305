"""Activities of the points signup: links, the gateway check, registration, release.

``issue_link`` makes the token, keeps only its hash, and mails the link itself: the token
never passes through the workflow (whose history is stored) nor the outbox.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity

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
    MatchGatewayInput,
    Registered,
    RegisterMemberInput,
    ReleaseSignupInput,
)
from store import signup as signup_store


class SignupActivities:
    def __init__(self, engine: Engine, mail: MailActivities, registration_url: str) -> None:
        self._engine = engine
        self._mail = mail
        self._registration_url = registration_url

    @activity.defn
    async def issue_link(self, inp: IssueLinkInput) -> LinkIssued:
        token, issued = await asyncio.to_thread(signup_store.issue_link, self._engine, inp)
        if token is None:
            return issued  # mailed on an earlier attempt
        await self._mail.deliver(
            MailRequest(
                key=f"{signup_workflow_id(inp.signup_id)}:link:{inp.seq}",
                kind=MailKind.SIGNUP_LINK,
                signup_id=inp.signup_id,
                context={"expires_at": format_jst(issued.expires_at)},
            ),
            secret={"link_url": f"{self._registration_url}#{token}"},
        )
        await asyncio.to_thread(signup_store.mark_link_mailed, self._engine, inp.signup_id, inp.seq)
        metrics.LINKS_ISSUED.inc()
        return issued

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
