"""Machine callers: the monitoring system announcing accounts, operators listing journeys."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import ClientDep, EngineDep, SettingsDep, SystemDep
from api.errors import ApiError, error_responses
from api.schemas import (
    AnnounceAccountRequest,
    AnnounceAccountResponse,
    OperatorJourney,
    OperatorJourneyList,
)
from api.security import hash_password
from api.services import enrollment as enrollment_service
from domain import search_attributes as sa
from domain.enrollment import Stage
from domain.errors import ErrorCode
from store import enrollment as enrollment_store

router = APIRouter(prefix="/v1/system", tags=["system"])


@router.post(
    "/accounts",
    response_model=AnnounceAccountResponse,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        ErrorCode.SYSTEM_KEY_INVALID,
        ErrorCode.INVALID_EMAIL,
        ErrorCode.INVALID_GATEWAY_ID,
        ErrorCode.INVALID_PCS_SERIAL,
        ErrorCode.CONTROL_CHARACTER,
        ErrorCode.GATEWAY_LISTED_TWICE,
        ErrorCode.ACCOUNT_EXISTS,
        ErrorCode.GATEWAY_REGISTERED,
    ),
)
async def announce_account(
    body: AnnounceAccountRequest,
    _: SystemDep,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
) -> AnnounceAccountResponse:
    """The monitoring system announces a new account; its journey starts at once.

    The password is hashed (argon2id) here and never leaves this process in plaintext.
    An individual account with an eligible gateway gets the invitation mail; any other
    journey ends as ineligible with a reason code.
    """
    repeated = body.repeated_gateway()
    if repeated is not None:
        raise ApiError(
            ErrorCode.GATEWAY_LISTED_TWICE, loc=["body", "gateways", repeated, "gateway_id"]
        )
    password_hash = await asyncio.to_thread(hash_password, body.password)  # CPU-heavy
    try:
        account = await asyncio.to_thread(
            enrollment_store.create_account, engine, *body.rows(password_hash)
        )
    except enrollment_store.RuleViolation as err:
        raise ApiError(err.code) from None
    workflow_id = await enrollment_service.start_journey(client, settings, account.id)
    await asyncio.to_thread(enrollment_store.remember_enrollment, engine, account.id, workflow_id)
    return AnnounceAccountResponse(account_id=account.id, workflow_id=workflow_id)


@router.get(
    "/journeys",
    response_model=OperatorJourneyList,
    responses=error_responses(ErrorCode.SYSTEM_KEY_INVALID),
)
async def list_journeys(
    _: SystemDep,
    client: ClientDep,
    stage: Annotated[Stage | None, Query(description="Only journeys in this stage")] = None,
    needs_operator: Annotated[
        bool | None, Query(description="Only dormant journeys or ones with undelivered mail")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OperatorJourneyList:
    """Journeys as operators see them in the Temporal UI (no personal data)."""
    return OperatorJourneyList(
        journeys=await list_journey_rows(client, stage, needs_operator, limit)
    )


async def list_journey_rows(
    client: ClientDep, stage: Stage | None, needs_operator: bool | None, limit: int
) -> list[OperatorJourney]:
    clauses = ["WorkflowType = 'EnrollmentWorkflow'"]
    if stage is not None:
        clauses.append(f"{sa.STAGE.name} = '{stage.value}'")
    if needs_operator is not None:
        clauses.append(f"{sa.NEEDS_OPERATOR.name} = {'true' if needs_operator else 'false'}")
    rows = []
    async for wf in client.list_workflows(" AND ".join(clauses), limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            OperatorJourney(
                workflow_id=wf.id,
                run_status=wf.status.name if wf.status else "UNKNOWN",
                stage=attrs.get(sa.STAGE),
                stage_entered_at=attrs.get(sa.STAGE_ENTERED_AT),
                reminder_count=attrs.get(sa.REMINDER_COUNT),
                needs_operator=attrs.get(sa.NEEDS_OPERATOR),
            )
        )
    return rows
