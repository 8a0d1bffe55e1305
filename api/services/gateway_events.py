"""Gateway changes from the monitoring system: record in the store, then tell the journey."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas import GatewayEventBody
from api.services.starts import temporal_call
from config import Settings
from domain.enrollment import GatewayChanged, GatewayEventKind
from domain.errors import ErrorCode
from domain.ids import enrollment_workflow_id
from store import gateway_events as events_store
from store.enrollment import RuleViolation
from workflows.enrollment import EnrollmentWorkflow


@dataclass(frozen=True)
class Reported:
    recorded: bool
    signalled: bool


def _store_input(account_id: str, body: GatewayEventBody) -> events_store.GatewayEventInput:
    new = body.new_gateway
    if body.kind in (GatewayEventKind.ADDED, GatewayEventKind.EXCHANGED) and new is None:
        raise ApiError(ErrorCode.GATEWAY_EVENT_INCOMPLETE, loc=["body", "new_gateway"])
    if body.kind == GatewayEventKind.ADDED and new and new.gateway_id != body.gateway_id:
        raise ApiError(
            ErrorCode.GATEWAY_EVENT_INCOMPLETE, loc=["body", "new_gateway", "gateway_id"]
        )
    if body.kind == GatewayEventKind.UNITS_CHANGED:
        for name in ("pv_unit_in_use", "battery_unit_in_use"):
            if getattr(body, name) is None:
                raise ApiError(ErrorCode.GATEWAY_EVENT_INCOMPLETE, loc=["body", name])
    return events_store.GatewayEventInput(
        event_id=body.event_id,
        account_id=account_id,
        kind=body.kind,
        gateway_id=body.gateway_id,
        occurred_at=body.occurred_at,
        new_gateway=(
            events_store.NewGateway(
                gateway_id=new.gateway_id,
                pcs_serial=new.pcs_serial,
                model=new.model.value,
                pv_unit_in_use=new.pv_unit_in_use,
                battery_unit_in_use=new.battery_unit_in_use,
            )
            if new
            else None
        ),
        pv_unit_in_use=body.pv_unit_in_use,
        battery_unit_in_use=body.battery_unit_in_use,
    )


async def report(
    client: Client, engine: Engine, settings: Settings, account_id: str, body: GatewayEventBody
) -> Reported:
    """Record the event (idempotent by its ID), then signal the journey.

    The signal goes out for a repeated event too: the first report may have been recorded
    while Temporal was down, and the journey ignores an event ID it has seen. A journey
    that is not running (ended, or never started) has nothing to re-check: the store's
    record is the event's only trace, and a journey started later reads the registry.
    """
    inp = _store_input(account_id, body)
    try:
        recorded = events_store.record_gateway_event(engine, inp)
    except RuleViolation as err:
        raise ApiError(err.code) from None
    handle = client.get_workflow_handle_for(
        EnrollmentWorkflow.run, enrollment_workflow_id(account_id)
    )
    signal = GatewayChanged(
        event_id=body.event_id,
        kind=body.kind,
        gateway_id=body.gateway_id,
        new_gateway_id=(
            body.new_gateway.gateway_id
            if body.new_gateway and body.kind == GatewayEventKind.EXCHANGED
            else None
        ),
    )
    try:
        await temporal_call(settings, handle.signal(EnrollmentWorkflow.gateway_changed, signal))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return Reported(recorded=recorded, signalled=False)
    return Reported(recorded=recorded, signalled=True)
