"""Machine callers: the monitoring system announcing accounts, operators listing journeys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import ClientDep, EngineDep, SettingsDep, SystemDep
from api.errors import ApiError, error_responses
from api.schemas import (
    AnnounceAccountRequest,
    AnnounceAccountResponse,
    GatewayEventBody,
    GatewayEventResponse,
    OperatorJourney,
    OperatorJourneyList,
)
from api.services import gateway_events as gateway_events_service
from api.services import starts as starts_service
from domain import search_attributes as sa
from domain.enrollment import Stage
from domain.errors import ErrorCode
from domain.operators import CONTINUED_AS_NEW

router = APIRouter(prefix="/v1/system", tags=["system"])


@router.post(
    "/accounts",
    response_model=AnnounceAccountResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {
            "model": AnnounceAccountResponse,
            "description": "The same announcement was recorded before; its journey runs.",
        },
        status.HTTP_202_ACCEPTED: {
            "model": AnnounceAccountResponse,
            "description": (
                "Recorded; the Temporal server could not be reached, so the journey start is "
                "pending (journey: pending). A worker starts it as soon as it can: do not "
                "treat this as a failure; sending the same announcement again is safe."
            ),
        },
        **error_responses(
            ErrorCode.SYSTEM_KEY_INVALID,
            ErrorCode.INVALID_EMAIL,
            ErrorCode.INVALID_GATEWAY_ID,
            ErrorCode.INVALID_PCS_SERIAL,
            ErrorCode.CONTROL_CHARACTER,
            ErrorCode.GATEWAY_LISTED_TWICE,
            ErrorCode.ACCOUNT_EXISTS,
            ErrorCode.GATEWAY_REGISTERED,
        ),
    },
)
async def announce_account(
    body: AnnounceAccountRequest,
    _: SystemDep,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    response: Response,
) -> AnnounceAccountResponse:
    """The monitoring system announces a new account; its journey starts at once.

    The password is hashed (argon2id) here and never leaves this process in plaintext.
    An individual account with an eligible gateway gets the invitation mail; any other
    journey ends as ineligible with a reason code. The account and the promise to start
    its journey are stored together: 201 when the journey started, 202 when the Temporal
    server could not be reached (a worker starts it later, once), 200 for the same
    announcement sent again (e-mail, name, holder type, gateways and password all equal);
    a different announcement for a known e-mail is 409 ``account_exists``.
    """
    repeated = body.repeated_gateway()
    if repeated is not None:
        raise ApiError(
            ErrorCode.GATEWAY_LISTED_TWICE, loc=["body", "gateways", repeated, "gateway_id"]
        )
    announced = await starts_service.announce(client, engine, settings, body)
    response.status_code = announced.status_code
    return AnnounceAccountResponse(
        account_id=announced.account_id,
        workflow_id=announced.workflow_id,
        journey=announced.journey,
    )


@router.get(
    "/journeys",
    response_model=OperatorJourneyList,
    responses=error_responses(ErrorCode.SYSTEM_KEY_INVALID, ErrorCode.TEMPORAL_UNAVAILABLE),
)
async def list_journeys(
    _: SystemDep,
    client: ClientDep,
    settings: SettingsDep,
    stage: Annotated[Stage | None, Query(description="Only journeys in this stage")] = None,
    needs_operator: Annotated[
        bool | None, Query(description="Only dormant journeys or ones with undelivered mail")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OperatorJourneyList:
    """Journeys as operators see them in the Temporal UI (no personal data)."""
    rows = await starts_service.temporal_call(
        settings, list_journey_rows(client, stage, needs_operator, limit)
    )
    return OperatorJourneyList(journeys=rows)


async def list_journey_rows(
    client: ClientDep, stage: Stage | None, needs_operator: bool | None, limit: int
) -> list[OperatorJourney]:
    # The chain's current run only: a run that continued as new is not the journey's state.
    clauses = ["WorkflowType = 'EnrollmentWorkflow'", f"ExecutionStatus != '{CONTINUED_AS_NEW}'"]
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


@router.post(
    "/accounts/{account_id}/gateways",
    response_model=GatewayEventResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {
            "model": GatewayEventResponse,
            "description": "This event ID was recorded before; nothing changed again.",
        },
        **error_responses(
            ErrorCode.SYSTEM_KEY_INVALID,
            ErrorCode.INVALID_GATEWAY_ID,
            ErrorCode.INVALID_PCS_SERIAL,
            ErrorCode.GATEWAY_EVENT_INCOMPLETE,
            ErrorCode.ACCOUNT_NOT_FOUND,
            ErrorCode.GATEWAY_NOT_OWNED,
            ErrorCode.GATEWAY_REGISTERED,
            ErrorCode.GATEWAY_EVENT_CONFLICT,
            ErrorCode.TEMPORAL_UNAVAILABLE,
        ),
    },
)
async def report_gateway_event(
    body: GatewayEventBody,
    _: SystemDep,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    response: Response,
    account_id: str = Path(max_length=32, pattern=r"^[0-9a-f]+$"),
) -> GatewayEventResponse:
    """The monitoring system reports a gateway change: ``added``, ``exchanged`` (the old
    gateway's circle application ends; the new gateway may be applied for), ``removed``
    (its application ends), ``units_changed`` (PV / battery unit in use).

    Recorded in the store once per ``event_id`` (201; 200 for the same event again; 409
    ``gateway_event_conflict`` for a different event under a known ID), then signalled to
    the running journey, which re-checks eligibility: the customer is mailed about an
    applied gateway that changed, and an application no longer eligible is flagged for an
    operator (``EcoNeedsOperator``). An ended journey only has the store's record.
    """
    reported = await gateway_events_service.report(client, engine, settings, account_id, body)
    response.status_code = status.HTTP_201_CREATED if reported.recorded else status.HTTP_200_OK
    return GatewayEventResponse(
        event_id=body.event_id,
        recorded=reported.recorded,
        journey="signalled" if reported.signalled else "not_running",
    )
