"""The customer's circle journey: start or resume, consent, gateways, apply, cancel."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Path, status

from api.deps import AccountDep, ClientDep, EngineDep, EnrolledDep, SettingsDep
from api.errors import ApiError, error_responses
from api.schemas import (
    ApplicationCompleted,
    CancelResponse,
    ConsentBody,
    ConsentResponse,
    DocumentView,
    GatewayList,
    JourneyResponse,
)
from api.services import enrollment as enrollment_service
from config import document_text
from domain.enrollment import ApplyRequest, CancelRequest, ConsentRequest
from domain.errors import ErrorCode, FieldRuleError
from domain.ids import enrollment_workflow_id
from domain.values import parse_gateway_id
from store import enrollment as enrollment_store
from workflows.enrollment import EnrollmentWorkflow

router = APIRouter(prefix="/v1", tags=["circle journey"])

AUTH = (ErrorCode.NOT_AUTHENTICATED,)
CALL = (*AUTH, ErrorCode.JOURNEY_NOT_FOUND, ErrorCode.WORKER_UNAVAILABLE)


@router.get("/terms", response_model=DocumentView)
def get_terms(settings: SettingsDep) -> DocumentView:
    """The current circle member terms (会員規約): show them, then send their version."""
    terms = settings.circle_terms()
    return DocumentView(**terms.model_dump(), text=document_text(settings.circle_terms_file))


@router.post(
    "/journey",
    response_model=JourneyResponse,
    responses=error_responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.WORKER_UNAVAILABLE),
)
async def start_or_resume(
    account: AccountDep, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> JourneyResponse:
    """Start the customer's journey, or return the one under way.

    A journey that ended (declined, ineligible, withdrawn) starts anew and checks
    eligibility again.
    """
    workflow_id = await enrollment_service.start_journey(client, settings, account.id)
    await asyncio.to_thread(enrollment_store.remember_enrollment, engine, account.id, workflow_id)
    state = await enrollment_service.settled_status_of(client, settings, account.id)
    return JourneyResponse(**state.model_dump(), workflow_id=workflow_id)


@router.get("/journey", response_model=JourneyResponse, responses=error_responses(*CALL))
async def get_journey(
    account: EnrolledDep, client: ClientDep, settings: SettingsDep
) -> JourneyResponse:
    """Where the journey stands: stage, gateways, reminders, next reminder due."""
    state = await enrollment_service.status_of(client, settings, account.id)
    return JourneyResponse(**state.model_dump(), workflow_id=enrollment_workflow_id(account.id))


@router.post(
    "/journey/consent",
    response_model=ConsentResponse,
    responses=error_responses(
        *CALL,
        ErrorCode.TERMS_VERSION_OUTDATED,
        ErrorCode.CONTROL_CHARACTER,
        ErrorCode.WRONG_STAGE,
        ErrorCode.JOURNEY_CLOSED,
    ),
)
async def answer_terms(
    body: ConsentBody,
    account: EnrolledDep,
    client: ClientDep,
    settings: SettingsDep,
) -> ConsentResponse:
    """同意する (``agree: true``) or 同意しない (``agree: false``) on the member terms.

    Consent is recorded in the ledger with the terms version and content hash. Declining
    ends the journey.
    """
    handle = enrollment_service.handle_for(client, account.id)
    if body.agree:
        agreed = await enrollment_service.answer(
            settings,
            handle.execute_update(
                EnrollmentWorkflow.give_consent, ConsentRequest(terms_version=body.terms_version)
            ),
        )
        return ConsentResponse(stage=agreed.stage, decided_at=agreed.consented_at)
    declined = await enrollment_service.answer(
        settings, handle.execute_update(EnrollmentWorkflow.decline)
    )
    return ConsentResponse(stage=declined.stage, decided_at=declined.declined_at)


@router.get("/journey/gateways", response_model=GatewayList, responses=error_responses(*CALL))
async def list_gateways(
    account: EnrolledDep, client: ClientDep, settings: SettingsDep
) -> GatewayList:
    """The customer's gateways, each with eligibility (and why not) and application state."""
    state = await enrollment_service.status_of(client, settings, account.id)
    return GatewayList(gateways=state.gateways)


@router.post(
    "/journey/applications",
    response_model=ApplicationCompleted,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        *CALL,
        ErrorCode.INVALID_GATEWAY_ID,
        ErrorCode.WRONG_STAGE,
        ErrorCode.JOURNEY_CLOSED,
        ErrorCode.GATEWAY_NOT_OWNED,
        ErrorCode.GATEWAY_NOT_ELIGIBLE,
        ErrorCode.GATEWAY_ALREADY_APPLIED,
    ),
)
async def apply_gateway(
    body: ApplyRequest,
    account: EnrolledDep,
    client: ClientDep,
    settings: SettingsDep,
) -> ApplicationCompleted:
    """申込確定 for one gateway; answers with the completion screen's data.

    The completion mail (申込完了のお知らせ) goes out with the same data.
    """
    receipt = await enrollment_service.answer(
        settings,
        enrollment_service.handle_for(client, account.id).execute_update(
            EnrollmentWorkflow.apply_gateway, body
        ),
    )
    return ApplicationCompleted(**receipt.model_dump(), applied_at_jst=receipt.applied_at_jst)


@router.delete(
    "/journey/applications/{gateway_id}",
    response_model=CancelResponse,
    responses=error_responses(
        *CALL,
        ErrorCode.INVALID_GATEWAY_ID,
        ErrorCode.APPLICATION_NOT_FOUND,
        ErrorCode.JOURNEY_CLOSED,
    ),
)
async def cancel_application(
    account: EnrolledDep,
    client: ClientDep,
    settings: SettingsDep,
    gateway_id: str = Path(description="12 half-width alphanumerics"),
) -> CancelResponse:
    """解約: cancel the circle application of one gateway (recorded and mailed).

    When no application is left, the journey ends as withdrawn.
    """
    try:
        canonical = parse_gateway_id(gateway_id)
    except FieldRuleError as err:
        raise ApiError(err.code, loc=["path", "gateway_id"]) from None
    receipt = await enrollment_service.answer(
        settings,
        enrollment_service.handle_for(client, account.id).execute_update(
            EnrollmentWorkflow.cancel_application, CancelRequest(gateway_id=canonical)
        ),
    )
    return CancelResponse(**receipt.model_dump())
