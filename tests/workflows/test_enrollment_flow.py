"""EnrollmentWorkflow's branches with the real store, on the time-skipping server, except
the journeys that reach ``enrolled``: they run on the dev server (``dev_env``).

An enrolled journey continues as new at once, and the time-skipping server loses a query
that arrives while a run continues as new (checked with a bare workflow that continues
when signalled: a query right after the signal fails with "query deadline exceeded" there,
every time, and is answered on the dev server). The API's queries go to a real server."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from api.security import hash_password
from domain.enrollment import (
    ApplyRequest,
    CancelRequest,
    ConsentRequest,
    IneligibleReason,
    PointsRegistered,
    Stage,
)
from domain.errors import ErrorCode, message_for
from domain.mail import MailKind
from store import enrollment as enrollment_store
from store.tables import Account, Consent, Gateway
from tests.factories import add_customer, random_id
from tests.history import closed_mail_activities, kinds
from tests.pii import assert_absent, history_bytes
from tests.waiting import eventually
from tests.workflows.harness import SIGNUP_URL, TERMS, MailRecorder, running_worker, wait_stage
from workflows.enrollment import EnrollmentWorkflow


async def refused(call: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await call  # type: ignore[misc]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type is not None
    return cause.type


async def test_whole_circle_journey(dev_env: WorkflowEnvironment, sqlite_engine: Engine) -> None:
    customer = add_customer(sqlite_engine)
    mails = MailRecorder()
    async with running_worker(dev_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id)
        status = await wait_stage(handle, Stage.AWAITING_CONSENT)
        assert {g.gateway_id: g.eligible for g in status.gateways} == {
            customer.eligible_gateway: True,
            customer.other_gateway: False,
        }
        await eventually(lambda: len(mails.of_kind(MailKind.INVITATION)) == 1)

        consent = await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        assert consent.stage == Stage.AWAITING_APPLICATION

        # Full-width input is normalised by the request model (NFKC).
        fullwidth = customer.eligible_gateway.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
        receipt = await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=fullwidth)
        )
        assert receipt.gateway_id == customer.eligible_gateway
        assert receipt.pcs_serial == customer.eligible_pcs
        assert receipt.points_signup_url == SIGNUP_URL
        await eventually(lambda: len(mails.of_kind(MailKind.APPLICATION_COMPLETE)) == 1)
        complete, _ = mails.of_kind(MailKind.APPLICATION_COMPLETE)[0]
        assert complete.context == {
            "applied_at": receipt.applied_at_jst,
            "gateway_id": customer.eligible_gateway,
            "pcs_serial": customer.eligible_pcs,
        }
        status = await wait_stage(handle, Stage.AWAITING_POINTS_SIGNUP)

        await handle.signal(
            EnrollmentWorkflow.points_registered,
            PointsRegistered(
                gateway_id=customer.eligible_gateway, registered_at=receipt.applied_at
            ),
        )
        status = await wait_stage(handle, Stage.ENROLLED)
        assert status.points_member_gateway_id == customer.eligible_gateway

        cancelled = await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.eligible_gateway),
        )
        assert cancelled.stage == Stage.WITHDRAWN
        result = await handle.result()
        assert result.stage == Stage.WITHDRAWN
        # The journey ends only after its mails are sent, so each arrived exactly once.
        sent = [MailKind.INVITATION, MailKind.APPLICATION_COMPLETE, MailKind.APPLICATION_CANCELLED]
        assert [req.kind for req, _ in mails.calls] == sent
        # Across both runs (it continued as new once enrolled): each mail asked for once.
        assert kinds(await closed_mail_activities(handle)) == sent

    with Session(sqlite_engine) as session:
        ledger = session.exec(select(Consent).where(Consent.account_id == customer.account_id))
        rows = list(ledger)
    assert [(r.decision, r.version, r.content_sha256) for r in rows] == [
        ("agreed", TERMS.version, TERMS.content_sha256)
    ]


async def test_decline_ends_the_journey(ts_env: WorkflowEnvironment, sqlite_engine: Engine) -> None:
    customer = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        declined = await handle.execute_update(EnrollmentWorkflow.decline)
        assert declined.stage == Stage.DECLINED
        assert (await handle.result()).stage == Stage.DECLINED
    with Session(sqlite_engine) as session:
        row = session.exec(select(Consent).where(Consent.account_id == customer.account_id)).one()
    assert row.decision == "declined"


async def test_corporate_account_is_ineligible_and_not_invited(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine, holder_type="corporate")
    mails = MailRecorder()
    async with running_worker(ts_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id)
        result = await handle.result()
        # The closed workflow's history is complete: no mail was ever asked for (an
        # activity scheduled just before the end might never reach the recorder).
        assert await closed_mail_activities(handle) == []
    assert result.stage == Stage.INELIGIBLE
    assert result.ineligible_reason == IneligibleReason.CORPORATE_ACCOUNT
    assert mails.calls == []


async def test_account_without_eligible_gateway_is_ineligible(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    account = enrollment_store.create_account(
        sqlite_engine,
        Account(
            email=f"{random_id(8).lower()}@example.com",
            password_hash=hash_password("irrelevant-pw"),
            display_name="太陽 花子",
            holder_type="individual",
        ),
        [
            Gateway(
                account_id="",
                gateway_id=random_id(12),
                pcs_serial=random_id(8),
                model="KPBP-A",
                pv_unit_in_use=False,
                battery_unit_in_use=True,
            )
        ],
    )
    mails = MailRecorder()
    async with running_worker(ts_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(account.id)
        result = await handle.result()
        status = await handle.query(EnrollmentWorkflow.get_status)
        assert await closed_mail_activities(handle) == []
    assert result.ineligible_reason == IneligibleReason.NO_ELIGIBLE_GATEWAY
    assert status.gateways[0].reasons == ["pv_unit_not_in_use"]
    assert mails.calls == []


async def test_refusals_carry_their_reason_codes(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine)
    stranger = add_customer(sqlite_engine)
    async with running_worker(ts_env.client, sqlite_engine, MailRecorder()) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        apply = EnrollmentWorkflow.apply_gateway

        assert (
            await refused(
                handle.execute_update(apply, ApplyRequest(gateway_id=customer.eligible_gateway))
            )
            == "wrong_stage"
        )
        assert (
            await refused(
                handle.execute_update(
                    EnrollmentWorkflow.give_consent, ConsentRequest(terms_version="2022-07-01")
                )
            )
            == "terms_version_outdated"
        )
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        assert (
            await refused(
                handle.execute_update(apply, ApplyRequest(gateway_id=stranger.eligible_gateway))
            )
            == "gateway_not_owned"
        )
        assert (
            await refused(
                handle.execute_update(apply, ApplyRequest(gateway_id=customer.other_gateway))
            )
            == "gateway_not_eligible"
        )
        await handle.execute_update(apply, ApplyRequest(gateway_id=customer.eligible_gateway))
        assert (
            await refused(
                handle.execute_update(apply, ApplyRequest(gateway_id=customer.eligible_gateway))
            )
            == "gateway_already_applied"
        )
        assert (
            await refused(
                handle.execute_update(
                    EnrollmentWorkflow.cancel_application,
                    CancelRequest(gateway_id=customer.other_gateway),
                )
            )
            == "application_not_found"
        )

        # Refused by a validator: nothing in history. Accepted: consent, one apply,
        # and the not-owned apply (only the store can tell; its handler failed).
        history = await handle.fetch_history()
        accepted = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 3
        # The handler's refusal is in history, but its message is not in plaintext
        # (failure attributes are encoded into the encrypted payload).
        assert_absent(history_bytes(history), message_for(ErrorCode.GATEWAY_NOT_OWNED))


async def test_cancelling_one_of_two_applications_keeps_the_journey(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    customer = add_customer(sqlite_engine, second_eligible=True)
    mails = MailRecorder()
    async with running_worker(ts_env.client, sqlite_engine, mails) as journeys:
        handle = await journeys.start(customer.account_id)
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        for gw in (customer.eligible_gateway, customer.other_gateway):
            await handle.execute_update(
                EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=gw)
            )
        receipt = await handle.execute_update(
            EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=customer.other_gateway)
        )
        assert receipt.stage == Stage.AWAITING_POINTS_SIGNUP
        status = await handle.query(EnrollmentWorkflow.get_status)
        states = {g.gateway_id: g.application.value for g in status.gateways}
        assert states == {customer.eligible_gateway: "active", customer.other_gateway: "cancelled"}
        await eventually(lambda: len(mails.of_kind(MailKind.APPLICATION_CANCELLED)) == 1)
        cancel_mail, _ = mails.of_kind(MailKind.APPLICATION_CANCELLED)[0]
        assert cancel_mail.context["gateway_id"] == customer.other_gateway


async def test_signal_before_run_is_kept(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """Signal-with-start delivers before run() starts: state lives in @workflow.init."""
    customer = add_customer(sqlite_engine)
    async with running_worker(dev_env.client, sqlite_engine, MailRecorder()) as journeys:
        from datetime import UTC, datetime

        handle = await journeys.start(
            customer.account_id,
            start_signal="points_registered",
            start_signal_args=[
                PointsRegistered(
                    gateway_id=customer.eligible_gateway, registered_at=datetime.now(UTC)
                )
            ],
        )
        await wait_stage(handle, Stage.AWAITING_CONSENT)
        await handle.execute_update(
            EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=TERMS.version)
        )
        await handle.execute_update(
            EnrollmentWorkflow.apply_gateway, ApplyRequest(gateway_id=customer.eligible_gateway)
        )
        status = await wait_stage(handle, Stage.ENROLLED)
        assert status.points_member_gateway_id == customer.eligible_gateway
        await handle.execute_update(
            EnrollmentWorkflow.cancel_application,
            CancelRequest(gateway_id=customer.eligible_gateway),
        )
        assert (await handle.result()).stage == Stage.WITHDRAWN
