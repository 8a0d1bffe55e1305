"""Operators: find stuck journeys and signups, and act on them (every action audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import (
    ClientDep,
    EngineDep,
    IdempotencyKeyDep,
    OperatorDep,
    SettingsDep,
    ViewerDep,
)
from api.errors import ApiError, error_responses
from api.schemas import OperatorActionBody, OperatorActionResult, OperatorRow, OperatorRowList
from api.services import operators as service
from domain.errors import ErrorCode
from domain.operators import STAGES, OperatorAction

router = APIRouter(prefix="/v1/operator", tags=["operator"])


@router.get(
    "/journeys",
    response_model=OperatorRowList,
    responses=error_responses(
        ErrorCode.OPERATOR_UNAUTHENTICATED,
        ErrorCode.OPERATOR_DISABLED,
        ErrorCode.INVALID_INPUT,
        ErrorCode.TEMPORAL_UNAVAILABLE,
    ),
)
async def list_journeys(
    _: ViewerDep,
    client: ClientDep,
    settings: SettingsDep,
    stage: Annotated[
        str | None,
        Query(description="EcoStage: a journey stage, or signup_<status> for a signup"),
    ] = None,
    needs_operator: Annotated[bool | None, Query(description="EcoNeedsOperator")] = None,
    stuck: Annotated[bool, Query(description="only what a stuck rule selects")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OperatorRowList:
    """Journeys and signups, by the same visibility queries the README gives for the
    Temporal UI (returned in ``queries``); with ``stuck=true`` each row says which stuck
    rules it meets and the suggested next action. No personal data."""
    if stage is not None and stage not in STAGES:
        raise ApiError(ErrorCode.INVALID_INPUT, loc=["query", "stage"])
    listing = await service.list_rows_bounded(
        client, settings, stage=stage, needs_operator=needs_operator, stuck=stuck, limit=limit
    )
    return OperatorRowList(
        queries=listing.queries,
        journeys=[OperatorRow(**vars(row)) for row in listing.rows],
    )


@router.post(
    "/journeys/{workflow_id}/actions/{action}",
    response_model=OperatorActionResult,
    responses=error_responses(
        ErrorCode.OPERATOR_UNAUTHENTICATED,
        ErrorCode.OPERATOR_DISABLED,
        ErrorCode.OPERATOR_ROLE_INSUFFICIENT,
        ErrorCode.OPERATOR_ROLE_REQUIRED,
        ErrorCode.JOURNEY_NOT_FOUND,
        ErrorCode.JOURNEY_CLOSED,
        ErrorCode.SIGNUP_CLOSED,
        ErrorCode.SIGNUP_COMPLETED,
        ErrorCode.WRONG_STAGE,
        ErrorCode.ACTION_NOT_APPLICABLE,
        ErrorCode.NOT_FLAGGED,
        ErrorCode.NOT_DORMANT,
        ErrorCode.INVALID_INPUT,
        ErrorCode.CONTROL_CHARACTER,
        ErrorCode.WORKER_UNAVAILABLE,
        ErrorCode.TEMPORAL_UNAVAILABLE,
    ),
)
async def act(
    workflow_id: Annotated[str, Path(max_length=100)],
    action: OperatorAction,
    body: OperatorActionBody,
    operator: OperatorDep,
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep,
) -> OperatorActionResult:
    """One operator action on a journey (``enrollment-…``) or signup (``signup-…``), as
    the workflow's ``operator_action`` update: ``resend``, ``extend``, ``revive``,
    ``recheck_eligibility``, ``cancel``, ``clear_flag``. The action, the operator, the
    reason and the stage before and after are recorded in ``operator_audit``, refusals too;
    the update (with the reason, encrypted) is in the workflow's history. Send an
    ``Idempotency-Key`` to make a retry attach to the first attempt."""
    outcome, audit_id = await service.act(
        client, engine, settings, operator, workflow_id, action, body.reason, idempotency_key
    )
    return OperatorActionResult(
        workflow_id=workflow_id,
        action=outcome.action.value,
        before_stage=outcome.before_stage,
        after_stage=outcome.after_stage,
        at=outcome.at,
        detail=outcome.detail,
        audit_id=audit_id,
    )
