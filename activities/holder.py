"""Activities of "knowing the two IDs is not enough" (see ``domain/holder.py``).

Store writes and mail sending are separate activities: ``ask_holder`` records a request
(a short store activity the update awaits), ``mail_holder_confirmation`` mails it in the
background. The link's token is derived from a server key and the request's stored salt,
so a retried mail carries the same, working link, and neither the token nor an e-mail
address (the masked one included) ever passes through a workflow.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.enrollment import refuse_on_rule
from activities.mail import MailActivities
from domain.holder import (
    AskHolderInput,
    CheckGatewayInput,
    GatewayCheck,
    HolderAsked,
    HolderMailInput,
    RecordHolderDecisionInput,
    RegistrationNoticeInput,
    mask_email,
)
from domain.jst import format_jst
from domain.mail import MailKind, MailReceipt, MailRequest
from store import holder as holder_store


class HolderActivities:
    def __init__(
        self, engine: Engine, mail: MailActivities, confirmation_url: str, token_key: bytes
    ) -> None:
        self._engine = engine
        self._mail = mail
        self._confirmation_url = confirmation_url
        self._key = token_key

    @activity.defn
    def check_gateway(self, inp: CheckGatewayInput) -> GatewayCheck:
        return holder_store.check_gateway_entry(self._engine, inp)

    @activity.defn
    def ask_holder(self, inp: AskHolderInput) -> HolderAsked:
        return refuse_on_rule(lambda: holder_store.ask_holder(self._engine, inp, self._key))

    @activity.defn
    def record_holder_decision(self, inp: RecordHolderDecisionInput) -> None:
        refuse_on_rule(lambda: holder_store.record_decision(self._engine, inp))

    @activity.defn
    async def mail_holder_confirmation(self, inp: HolderMailInput) -> MailReceipt:
        """To the circle account: which gateway, which address (masked), the link."""
        facts = await asyncio.to_thread(
            holder_store.confirmation_by_id, self._engine, inp.confirmation_id
        )
        if facts is None:
            raise ApplicationError(
                "confirmation request not found", type="confirmation_unknown", non_retryable=True
            )
        token = holder_store.confirmation_token(self._key, facts.confirmation_id, facts.salt)
        return await self._mail.deliver(
            MailRequest(
                key=inp.key,
                kind=MailKind.HOLDER_CONFIRMATION,
                account_id=facts.account_id,
                context={
                    "gateway_id": facts.gateway_id,
                    "requested_at": format_jst(facts.requested_at),
                    "expires_at": format_jst(facts.expires_at),
                },
            ),
            secret={
                "confirmation_url": f"{self._confirmation_url}#{token}",
                "masked_email": facts.masked_email,
            },
        )

    @activity.defn
    async def mail_registration_notice(self, inp: RegistrationNoticeInput) -> MailReceipt:
        """To the circle account, whoever registered: gateway, time, address (masked)."""
        email = await asyncio.to_thread(holder_store.signup_address, self._engine, inp.signup_id)
        if email is None:
            raise ApplicationError(
                "signup not found", type="mail_recipient_unknown", non_retryable=True
            )
        return await self._mail.deliver(
            MailRequest(
                key=inp.key,
                kind=MailKind.POINTS_REGISTERED_NOTICE,
                account_id=inp.account_id,
                context={
                    "gateway_id": inp.gateway_id,
                    "registered_at": format_jst(inp.registered_at),
                },
            ),
            secret={"masked_email": mask_email(email)},
        )
