"""Talking to a SignupWorkflow (the スマイルeポイント signup): one workflow call per request.

Update IDs (see ``api.services.workflows.update_id``): the request's ``Idempotency-Key``
if it sent one; otherwise, for the steps that act, a key derived from the request:

- request a link: the signup and the current resend-cooldown window, so a retry within
  the cooldown attaches to the first request, and a new request after the cooldown mails
  a new link (the workflow's cooldown and daily cap still apply);
- begin: the signup, the token's hash, the service and the signup's stored status (a
  token is spent once; a retry gets the same session until the signup has ended);
- register: the signup and the session's link number.

The other steps (documents, agreement, gateway, customer) only record what was entered;
doing one twice changes nothing, so without a key each call gets its own ID.

An update to a signup whose workflow has closed is answered from the store:
``signup_completed`` if it registered, else ``signup_closed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.engine import Engine
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import ApiError
from api.schemas import (
    AgreementBody,
    BeginBody,
    CustomerBody,
    DocumentView,
    GatewayBody,
    LinkState,
    RegisteredResponse,
)
from api.security import hash_password_async
from api.services.workflows import answer, update_id
from config import Settings, document_text
from domain.customer import check_password
from domain.errors import ErrorCode, FieldRuleError, message_for
from domain.holder import HolderState
from domain.ids import signup_workflow_id
from domain.signup import (
    AgreeRequest,
    BeginRequest,
    CustomerEntry,
    GatewayEntry,
    LinkStatus,
    LinkView,
    PresentDocument,
    RegisterRequest,
    SessionRequest,
    SignupInput,
    SignupView,
)
from store import signup as signup_store
from workflows.signup import SignupWorkflow

T = TypeVar("T")
Handle = WorkflowHandle[SignupWorkflow, SignupView]
log = logging.getLogger("ecokatsu.signup")


@dataclass(frozen=True)
class SignupStep:
    """The signup a request's ``X-Signup-Session`` belongs to, and its link number."""

    signup_id: str
    seq: int


class SignupService:
    def __init__(self, client: Client, engine: Engine, settings: Settings) -> None:
        self.client, self.engine, self.settings = client, engine, settings

    def handle(self, signup_id: str) -> Handle:
        return self.client.get_workflow_handle_for(
            SignupWorkflow.run, signup_workflow_id(signup_id)
        )

    async def send_link(self, signup_id: str, already_member: bool, update: str) -> None:
        """Start the signup if need be and ask it for a new link (update-with-start of
        ``request_link``); too soon or too often for this signup is not an error (the
        customer's screen says "mail sent" either way). ``update`` is the update ID: a
        second hand-over of the same request attaches to the first."""
        settings = self.settings
        start = WithStartWorkflowOperation(
            SignupWorkflow.run,
            SignupInput(
                signup_id=signup_id,
                already_member=already_member,
                service_terms=settings.points_terms(),
                privacy_policy=settings.points_privacy(),
                policy=settings.signup,
                quiet_hours=settings.quiet,
                mail_task_queue=settings.mail_queue,
            ),
            id=signup_workflow_id(signup_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        try:
            await answer(
                settings,
                self.handle(signup_id),
                self.client.execute_update_with_start_workflow(
                    SignupWorkflow.request_link, start_workflow_operation=start, id=update
                ),
            )
        except ApiError as err:
            if err.status != 429:
                raise

    async def link_state(self, token: str) -> LinkState:
        """The state of a mailed link; spends nothing."""
        signup = await asyncio.to_thread(signup_store.signup_for_token, self.engine, token)
        if signup is None:
            return LinkState(state=LinkStatus.LINK_UNKNOWN, message=message_for("link_unknown"))
        handle = self.handle(signup.id)
        token_sha256 = signup_store.token_hash(token)
        view = await answer(self.settings, handle, _link_view(handle, token_sha256))
        if view.state != LinkStatus.VALID:
            return LinkState(state=view.state, message=message_for(view.state))
        return LinkState(state=view.state, message="", expires_at=view.expires_at)

    async def begin(self, body: BeginBody, key: str | None) -> SignupStep:
        """STEP1: spend the link's token; the answer is the session's step."""
        signup = await asyncio.to_thread(signup_store.signup_for_token, self.engine, body.token)
        if signup is None:
            raise ApiError(ErrorCode.LINK_UNKNOWN)
        token_sha256 = signup_store.token_hash(body.token)
        # The signup's stored status is part of the key: once it has registered (or
        # ended), the same submission is a new request and is told so.
        status = signup.status
        request = f"key:{key}" if key else f"body:{token_sha256}:{body.service}:{status}"
        handle = self.handle(signup.id)
        begun = await self._answer(
            signup.id,
            handle.execute_update(
                SignupWorkflow.begin,
                BeginRequest(token_sha256=token_sha256, service=body.service),
                id=update_id("begin", signup.id, request),
            ),
        )
        return SignupStep(signup.id, begun.seq)

    async def present_document(
        self, step: SignupStep, document: str, key: str | None
    ) -> DocumentView:
        """STEP2: one document, recorded as shown (showing it again changes nothing)."""
        settings = self.settings
        docs = {
            terms.document: (terms, path)
            for terms, path in (
                (settings.points_terms(), settings.points_terms_file),
                (settings.points_privacy(), settings.points_privacy_file),
            )
        }
        if document not in docs:
            raise ApiError(ErrorCode.INVALID_INPUT, loc=["path", "document"])
        await self._answer(
            step.signup_id,
            self.handle(step.signup_id).execute_update(
                SignupWorkflow.present_document,
                PresentDocument(seq=step.seq, document=document),
                id=self._id(step, "present_document", key),
            ),
        )
        terms, path = docs[document]
        return DocumentView(**terms.model_dump(), text=document_text(path))

    async def agree(self, step: SignupStep, body: AgreementBody, key: str | None) -> None:
        await self._answer(
            step.signup_id,
            self.handle(step.signup_id).execute_update(
                SignupWorkflow.agree,
                AgreeRequest(
                    seq=step.seq,
                    service_terms_version=body.service_terms_version,
                    privacy_policy_version=body.privacy_policy_version,
                    current_service_terms=self.settings.points_terms(),
                    current_privacy_policy=self.settings.points_privacy(),
                ),
                id=self._id(step, "agree", key),
            ),
        )

    async def enter_gateway(self, step: SignupStep, body: GatewayBody, key: str | None) -> None:
        await self._answer(
            step.signup_id,
            self.handle(step.signup_id).execute_update(
                SignupWorkflow.enter_gateway,
                GatewayEntry(seq=step.seq, gateway_id=body.gateway_id, pcs_serial=body.pcs_serial),
                id=self._id(step, "enter_gateway", key),
            ),
        )

    async def enter_customer(self, step: SignupStep, body: CustomerBody, key: str | None) -> None:
        """STEP4. The password is checked and hashed (argon2id) here: the workflow only
        ever sees the hash."""
        try:
            check_password(body.password)
        except FieldRuleError as err:
            raise ApiError(err.code, loc=["body", "password"]) from None
        if body.password_confirmation != body.password:
            raise ApiError(ErrorCode.PASSWORD_MISMATCH, loc=["body", "password_confirmation"])
        password_hash = await hash_password_async(body.password)
        await self._answer(
            step.signup_id,
            self.handle(step.signup_id).execute_update(
                SignupWorkflow.enter_customer,
                CustomerEntry(seq=step.seq, info=body.info(), password_hash=password_hash),
                id=self._id(step, "enter_customer", key),
            ),
        )

    async def view(self, step: SignupStep) -> SignupView:
        handle = self.handle(step.signup_id)
        return await self._answer(step.signup_id, handle.query(SignupWorkflow.get_signup))

    async def register(self, step: SignupStep, key: str | None) -> RegisteredResponse:
        """STEP5 登録する; a second submission gets the first one's answer."""
        request = f"key:{key}" if key else f"seq:{step.seq}"
        handle = self.handle(step.signup_id)
        registered = await self._answer(
            step.signup_id,
            handle.execute_update(
                SignupWorkflow.register,
                RegisterRequest(seq=step.seq),
                id=update_id("register", step.signup_id, request),
            ),
        )
        name = registered.name
        if not name:  # a result recorded before results carried the name
            view = await self._answer(step.signup_id, handle.query(SignupWorkflow.get_signup))
            name = view.info.name if view.info else ""
        return RegisteredResponse(
            name=name,
            gateway_id=registered.gateway_id,
            registered_at=registered.registered_at,
            my_page_url=self.settings.points_login_url,
        )

    async def ask_holder_again(self, step: SignupStep) -> HolderState:
        """Ask the circle account holder again after an unanswered request expired."""
        handle = self.handle(step.signup_id)
        return await self._answer(
            step.signup_id,
            handle.execute_update(SignupWorkflow.ask_holder_again, SessionRequest(seq=step.seq)),
        )

    @staticmethod
    def _id(step: SignupStep, route: str, key: str | None) -> str | None:
        return update_id(route, step.signup_id, f"key:{key}") if key else None

    async def _answer(self, signup_id: str, call: Awaitable[T]) -> T:
        """``answer``, where a signup that has ended (or is gone) says how it ended."""
        try:
            return await answer(self.settings, self.handle(signup_id), call)
        except ApiError as err:
            if err.code not in (ErrorCode.JOURNEY_CLOSED, ErrorCode.JOURNEY_NOT_FOUND):
                raise
            ended = await asyncio.to_thread(signup_store.how_it_ended, self.engine, signup_id)
            raise ApiError(ended) from None


async def _link_view(handle: Handle, token_sha256: str) -> LinkView:
    """The link page's one query. A worker from before ``link_view`` (a rolling
    deployment; drop this once every worker has it) fails it; the two queries it knows
    answer the same then. Any failure of it is asked the older way (the failure's text is
    no rule to decide by): a worker that cannot answer at all fails those too, within
    the same answer timeout, and the page says worker_unavailable."""
    try:
        return await handle.query(SignupWorkflow.link_view, token_sha256)
    except WorkflowQueryFailedError as err:
        log.warning("link_view failed (%s); asking link_state and get_signup", err)
        state = await handle.query(SignupWorkflow.link_state, token_sha256)
        if state != LinkStatus.VALID:
            return LinkView(state=state)
        view = await handle.query(SignupWorkflow.get_signup)
        return LinkView(state=state, expires_at=view.link_expires_at)
