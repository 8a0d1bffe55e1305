"""Gateway changes from the monitoring system: added, exchanged, removed, units changed.

One transaction per event: the event row (its ID is the primary key, so a repeated event
is recognised and not applied twice) and the change to the registry. Exchanging or
removing a gateway ends its active circle application (cancelled at the event's time);
the journey learns of it by a signal and re-checks eligibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.enrollment import GatewayEventKind
from domain.errors import ErrorCode
from store.enrollment import RuleViolation
from store.tables import Account, CircleApplication, Gateway, GatewayEventRow


@dataclass(frozen=True)
class NewGateway:
    gateway_id: str
    pcs_serial: str
    model: str
    pv_unit_in_use: bool
    battery_unit_in_use: bool


@dataclass(frozen=True)
class GatewayEventInput:
    event_id: str
    account_id: str
    kind: GatewayEventKind
    gateway_id: str
    occurred_at: datetime
    new_gateway: NewGateway | None = None  # added (gateway_id is it), exchanged
    pv_unit_in_use: bool | None = None  # units_changed
    battery_unit_in_use: bool | None = None


def _same(row: GatewayEventRow, inp: GatewayEventInput) -> bool:
    new_id = inp.new_gateway.gateway_id if inp.new_gateway else None
    if inp.kind == GatewayEventKind.ADDED:
        new_id = None
    return (row.account_id, row.kind, row.gateway_id, row.new_gateway_id) == (
        inp.account_id,
        inp.kind.value,
        inp.gateway_id,
        new_id,
    )


def record_gateway_event(engine: Engine, inp: GatewayEventInput) -> bool:
    """Record and apply the event; False when this event ID was recorded before (the same
    event again: nothing changes). A different event under a known ID, an unknown account,
    a gateway of another account, or a new gateway already registered: ``RuleViolation``,
    and nothing is written."""
    with Session(engine) as session:
        known = session.get(GatewayEventRow, inp.event_id)
        if known is not None:
            if not _same(known, inp):
                raise RuleViolation(ErrorCode.GATEWAY_EVENT_CONFLICT)
            return False
        if session.get(Account, inp.account_id) is None:
            raise RuleViolation(ErrorCode.ACCOUNT_NOT_FOUND)
        if inp.kind == GatewayEventKind.ADDED:
            if inp.new_gateway is None:
                raise RuleViolation(ErrorCode.GATEWAY_EVENT_INCOMPLETE)
            _add(session, inp.account_id, inp.new_gateway)
        else:
            gateway = session.get(Gateway, inp.gateway_id)
            if gateway is None or gateway.account_id != inp.account_id:
                raise RuleViolation(ErrorCode.GATEWAY_NOT_OWNED)
            if inp.kind == GatewayEventKind.UNITS_CHANGED:
                if inp.pv_unit_in_use is None or inp.battery_unit_in_use is None:
                    raise RuleViolation(ErrorCode.GATEWAY_EVENT_INCOMPLETE)
                gateway.pv_unit_in_use = inp.pv_unit_in_use
                gateway.battery_unit_in_use = inp.battery_unit_in_use
            else:
                gateway.removed_at = inp.occurred_at
                _end_application(session, gateway, inp.occurred_at)
                if inp.kind == GatewayEventKind.EXCHANGED:
                    if inp.new_gateway is None:
                        raise RuleViolation(ErrorCode.GATEWAY_EVENT_INCOMPLETE)
                    _add(session, inp.account_id, inp.new_gateway)
            session.add(gateway)
        session.add(
            GatewayEventRow(
                event_id=inp.event_id,
                account_id=inp.account_id,
                kind=inp.kind.value,
                gateway_id=inp.gateway_id,
                new_gateway_id=(
                    inp.new_gateway.gateway_id
                    if inp.new_gateway and inp.kind == GatewayEventKind.EXCHANGED
                    else None
                ),
                pv_unit_in_use=inp.pv_unit_in_use,
                battery_unit_in_use=inp.battery_unit_in_use,
                occurred_at=inp.occurred_at,
            )
        )
        try:
            session.commit()
        except sa.exc.IntegrityError:
            # The same event, recorded concurrently by another request, or a gateway ID
            # registered meanwhile.
            session.rollback()
            again = session.get(GatewayEventRow, inp.event_id)
            if again is not None and _same(again, inp):
                return False
            raise RuleViolation(
                ErrorCode.GATEWAY_EVENT_CONFLICT if again else ErrorCode.GATEWAY_REGISTERED
            ) from None
        return True


def _add(session: Session, account_id: str, new: NewGateway) -> None:
    if session.get(Gateway, new.gateway_id) is not None:
        raise RuleViolation(ErrorCode.GATEWAY_REGISTERED)
    session.add(
        Gateway(
            gateway_id=new.gateway_id,
            pcs_serial=new.pcs_serial,
            model=new.model,
            pv_unit_in_use=new.pv_unit_in_use,
            battery_unit_in_use=new.battery_unit_in_use,
            account_id=account_id,
        )
    )
    session.flush()


def _end_application(session: Session, gateway: Gateway, at: datetime) -> None:
    active = session.exec(
        select(CircleApplication).where(
            CircleApplication.gateway_id == gateway.gateway_id,
            CircleApplication.status == "active",
        )
    ).first()
    if active is not None:
        active.status = "cancelled"
        active.cancelled_at = at
        session.add(active)


def events_of(engine: Engine, account_id: str) -> list[GatewayEventRow]:
    with Session(engine) as session:
        rows = session.exec(
            select(GatewayEventRow)
            .where(GatewayEventRow.account_id == account_id)
            .order_by(GatewayEventRow.recorded_at)  # type: ignore[arg-type]
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)
