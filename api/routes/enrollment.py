"""The customer's circle journey: start or resume, consent, gateways, apply, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from api.deps import (
    AccountDep,
    ClientDep,
    EngineDep,
    EnrolledDep,
    IdempotencyKeyDep,
    SettingsDep,
    TemporalDep,
    TokenAccountDep,
)
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
from api.services import starts as starts_service
from config import document_text
from domain.enrollment import ApplyRequest
from domain.errors import ErrorCode, FieldRuleError
from domain.ids import enrollment_workflow_id
from domain.values import parse_gateway_id

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
    responses=error_responses(
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.WORKER_UNAVAILABLE,
        ErrorCode.TEMPORAL_UNAVAILABLE,
        ErrorCode.JOURNEY_CLOSING,
    ),
)
async def start_or_resume(
    account: AccountDep, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> JourneyResponse:
    """Start the customer's journey, or return the one under way.

    A journey that ended (declined, ineligible, withdrawn) starts anew and checks
    eligibility again, even while its run is still sending its last mails (503
    ``journey_closing`` if that takes longer than the answer timeout).
    """
    workflow_id, state = await starts_service.start_or_resume(client, engine, settings, account.id)
    return JourneyResponse(**state.model_dump(), workflow_id=workflow_id)


@router.get("/journey", response_model=JourneyResponse, responses=error_responses(*CALL))
async def get_journey(
    account: TokenAccountDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> JourneyResponse:
    """Where the journey stands: stage, gateways, reminders, next reminder due."""
    state = await enrollment_service.status_of(temporal.get, engine, settings, account.id)
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
    key: IdempotencyKeyDep,
) -> ConsentResponse:
    """同意する (``agree: true``) or 同意しない (``agree: false``) on the member terms.

    Consent is recorded in the ledger with the terms version and content hash. A journey
    started under an older version of the terms moves to the current one (the version GET
    /v1/terms serves), so ``terms_version`` is always checked against that. Declining
    ends the journey. ``agree`` must be a JSON boolean: ``0`` or ``"no"`` is a 422, not a
    decline.
    """
    return await enrollment_service.decide_terms(client, settings, account.id, body, key)


@router.get("/journey/gateways", response_model=GatewayList, responses=error_responses(*CALL))
async def list_gateways(
    account: TokenAccountDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> GatewayList:
    """The customer's gateways, each with eligibility (and why not) and application state."""
    state = await enrollment_service.status_of(temporal.get, engine, settings, account.id)
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
        ErrorCode.POINTS_MEMBERSHIP_CANCELLED,
    ),
)
async def apply_gateway(
    body: ApplyRequest,
    account: TokenAccountDep,
    temporal: TemporalDep,
    engine: EngineDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
) -> ApplicationCompleted:
    """申込確定 for one gateway; answers with the completion screen's data.

    The completion mail (申込完了のお知らせ) goes out with the same data.
    """
    return await enrollment_service.apply_gateway(
        temporal.get, engine, settings, account.id, body.gateway_id, key
    )


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
    account: TokenAccountDep,
    temporal: TemporalDep,
    engine: EngineDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
    gateway_id: str = Path(description="12 half-width alphanumerics"),
) -> CancelResponse:
    """解約: cancel the circle application of one gateway (recorded and mailed).

    When no application is left, the journey ends as withdrawn.
    """
    try:
        canonical = parse_gateway_id(gateway_id)
    except FieldRuleError as err:
        raise ApiError(err.code, loc=["path", "gateway_id"]) from None
    return await enrollment_service.cancel_application(
        temporal.get, engine, settings, account.id, canonical, key
    )
