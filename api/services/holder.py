"""The circle account holder's decision on a points signup (承認する / 承認しない), by
the mailed link or in the logged-in circle session: the route and the web page both call
``decide``. The store's facts say who may decide and whether the request is still open;
the decision itself is the signup workflow's (``decide_holder``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from temporalio.client import Client

from api.errors import ApiError
from api.services.workflows import answer
from config import Settings
from domain.errors import ErrorCode
from domain.holder import HolderDecision, HolderState
from domain.ids import signup_workflow_id
from store.holder import ConfirmationFacts
from workflows.signup import SignupWorkflow


async def decide(
    client: Client,
    settings: Settings,
    facts: ConfirmationFacts,
    confirm: bool,
    channel: Literal["mail_link", "circle_session"],
) -> HolderState:
    code = facts.refusal(datetime.now(UTC))
    if code is not None:
        raise ApiError(code)
    handle = client.get_workflow_handle_for(SignupWorkflow.run, signup_workflow_id(facts.signup_id))
    decision = HolderDecision(
        confirmation_id=facts.confirmation_id, confirm=confirm, channel=channel
    )
    try:
        return await answer(
            settings, handle, handle.execute_update(SignupWorkflow.decide_holder, decision)
        )
    except ApiError as err:
        if err.code in (ErrorCode.JOURNEY_CLOSED, ErrorCode.JOURNEY_NOT_FOUND):
            raise ApiError(ErrorCode.CONFIRMATION_EXPIRED) from None  # the signup has ended
        raise
