"""Talking to a MemberWorkflow (the スマイルeポイント member's side): one call per request.

The workflow is started by update-with-start of the action (ID ``member-<signup id>``,
``USE_EXISTING`` while one runs, a new run once it has ended), so a member's actions run
one at a time. What the store can answer alone (照会, a link that is no longer valid) is
answered from the store: a change link outlives the workflow that mailed it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import ApiError
from api.services.workflows import answer, update_id
from config import Settings
from domain.errors import ErrorCode
from domain.ids import member_workflow_id
from domain.member import (
    ConfirmEmailChange,
    EmailChanged,
    EmailChangeRequest,
    MemberInput,
    MemberPolicy,
    MembershipCancelled,
)
from store import member as member_store
from store.enrollment import RuleViolation
from store.signup import token_hash
from workflows.member import MemberWorkflow

Handle = WorkflowHandle[MemberWorkflow, None]


class MemberService:
    def __init__(self, client: Client, engine: Engine, settings: Settings) -> None:
        self.client, self.engine, self.settings = client, engine, settings

    async def _start(
        self, member_id: int
    ) -> tuple[Handle, WithStartWorkflowOperation[MemberWorkflow, None]]:
        signup_id = await asyncio.to_thread(member_store.signup_of, self.engine, member_id)
        if signup_id is None:
            raise ApiError(ErrorCode.MEMBER_SESSION_INVALID)
        workflow_id = member_workflow_id(signup_id)
        start = WithStartWorkflowOperation(
            MemberWorkflow.run,
            MemberInput(
                member_id=member_id,
                policy=MemberPolicy(link_ttl=self.settings.signup.link_ttl),
                mail_task_queue=self.settings.mail_queue,
            ),
            id=workflow_id,
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        handle: Handle = self.client.get_workflow_handle_for(MemberWorkflow.run, workflow_id)
        return handle, start

    async def request_email_change(self, member_id: int, new_email: str, key: str | None) -> None:
        try:
            change_id = await asyncio.to_thread(
                member_store.record_email_change,
                self.engine,
                member_id,
                new_email,
                datetime.now(UTC),
            )
        except RuleViolation as err:
            raise ApiError(err.code) from None
        handle, start = await self._start(member_id)
        await answer(
            self.settings,
            handle,
            self.client.execute_update_with_start_workflow(
                MemberWorkflow.request_email_change,
                EmailChangeRequest(change_id=change_id),
                start_workflow_operation=start,
                # each request is its own (a new address row); a retry with the same
                # Idempotency-Key attaches to the first
                id=update_id("email_change", str(member_id), key or change_id),
            ),
        )

    async def confirm_email_change(self, token: str, key: str | None) -> EmailChanged:
        change = await asyncio.to_thread(member_store.change_for_token, self.engine, token)
        if change is None:
            raise ApiError(ErrorCode.EMAIL_CHANGE_UNKNOWN)
        refusal = member_store.refusal_for(change, datetime.now(UTC))
        if refusal is not None:
            raise ApiError(refusal)
        handle, start = await self._start(change.member_id)
        return await answer(
            self.settings,
            handle,
            self.client.execute_update_with_start_workflow(
                MemberWorkflow.confirm_email_change,
                ConfirmEmailChange(change_id=change.id, token_sha256=token_hash(token)),
                start_workflow_operation=start,
                id=update_id("email_change_confirm", change.id, key or ""),
            ),
        )

    async def cancel(self, member_id: int, key: str | None) -> MembershipCancelled:
        handle, start = await self._start(member_id)
        return await answer(
            self.settings,
            handle,
            self.client.execute_update_with_start_workflow(
                MemberWorkflow.cancel_membership,
                start_workflow_operation=start,
                id=update_id("member_cancel", str(member_id), key or ""),
            ),
        )
