"""Gateway events from the monitoring system, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain.enrollment import (
    ApplicationState,
    GatewayEventKind,
    GatewayReason,
    RecordApplicationInput,
)
from domain.errors import ErrorCode
from store import enrollment as enrollment_store
from store import gateway_events as events_store
from store.tables import Gateway
from tests.factories import add_customer, random_id


def event(
    account_id: str, kind: GatewayEventKind, gateway_id: str, **kw: object
) -> events_store.GatewayEventInput:
    return events_store.GatewayEventInput(
        event_id=kw.pop("event_id", random_id(20)),  # type: ignore[arg-type]
        account_id=account_id,
        kind=kind,
        gateway_id=gateway_id,
        occurred_at=datetime.now(UTC),
        **kw,  # type: ignore[arg-type]
    )


def new_gateway() -> events_store.NewGateway:
    return events_store.NewGateway(random_id(12), random_id(8), "KPBP-A", True, True)


def apply(engine: Engine, account_id: str, gateway_id: str) -> None:
    enrollment_store.record_application(
        engine,
        RecordApplicationInput(
            key=random_id(16),
            account_id=account_id,
            gateway_id=gateway_id,
            applied_at=datetime.now(UTC),
        ),
    )


def views(
    engine: Engine, account_id: str
) -> dict[str, tuple[bool, list[GatewayReason], ApplicationState]]:
    with Session(engine) as session:
        return {
            v.gateway_id: (v.eligible, v.reasons, v.application)
            for v in enrollment_store.gateway_views(session, account_id)
        }


def test_units_changed_once_per_event_id(store_engine: Engine) -> None:
    c = add_customer(store_engine)
    apply(store_engine, c.account_id, c.eligible_gateway)
    e = event(
        c.account_id,
        GatewayEventKind.UNITS_CHANGED,
        c.eligible_gateway,
        event_id="ev-units-1",
        pv_unit_in_use=True,
        battery_unit_in_use=False,
    )
    assert events_store.record_gateway_event(store_engine, e) is True
    assert events_store.record_gateway_event(store_engine, e) is False  # the same event
    eligible, reasons, application = views(store_engine, c.account_id)[c.eligible_gateway]
    assert (eligible, reasons) == (False, [GatewayReason.BATTERY_UNIT_NOT_IN_USE])
    assert application == ApplicationState.ACTIVE  # an operator decides, not the store
    assert [r.event_id for r in events_store.events_of(store_engine, c.account_id)] == [
        "ev-units-1"
    ]

    other = event(c.account_id, GatewayEventKind.REMOVED, c.eligible_gateway, event_id="ev-units-1")
    with pytest.raises(enrollment_store.RuleViolation) as info:
        events_store.record_gateway_event(store_engine, other)
    assert info.value.code == ErrorCode.GATEWAY_EVENT_CONFLICT


def test_exchange_ends_the_application_and_registers_the_new_gateway(store_engine: Engine) -> None:
    c = add_customer(store_engine)
    apply(store_engine, c.account_id, c.eligible_gateway)
    new = new_gateway()
    e = event(c.account_id, GatewayEventKind.EXCHANGED, c.eligible_gateway, new_gateway=new)
    assert events_store.record_gateway_event(store_engine, e)
    seen = views(store_engine, c.account_id)
    assert seen[c.eligible_gateway] == (
        False,
        [GatewayReason.GATEWAY_REMOVED],
        ApplicationState.CANCELLED,
    )
    assert seen[new.gateway_id] == (True, [], ApplicationState.NONE)
    # The old gateway cannot be applied for again; the new one can.
    with pytest.raises(enrollment_store.RuleViolation) as info:
        apply(store_engine, c.account_id, c.eligible_gateway)
    assert info.value.code == ErrorCode.GATEWAY_NOT_ELIGIBLE
    apply(store_engine, c.account_id, new.gateway_id)


def test_refusals_write_nothing(store_engine: Engine) -> None:
    c = add_customer(store_engine)
    stranger = add_customer(store_engine)
    cases = [
        (
            event("0" * 32, GatewayEventKind.REMOVED, c.eligible_gateway),
            ErrorCode.ACCOUNT_NOT_FOUND,
        ),
        (
            event(c.account_id, GatewayEventKind.REMOVED, stranger.eligible_gateway),
            ErrorCode.GATEWAY_NOT_OWNED,
        ),
        (
            event(
                c.account_id,
                GatewayEventKind.EXCHANGED,
                c.eligible_gateway,
                new_gateway=events_store.NewGateway(
                    stranger.other_gateway, random_id(8), "KPBP-A", True, True
                ),
            ),
            ErrorCode.GATEWAY_REGISTERED,
        ),
        (
            event(c.account_id, GatewayEventKind.UNITS_CHANGED, c.eligible_gateway),
            ErrorCode.GATEWAY_EVENT_INCOMPLETE,
        ),
    ]
    for e, code in cases:
        with pytest.raises(enrollment_store.RuleViolation) as info:
            events_store.record_gateway_event(store_engine, e)
        assert info.value.code == code
    assert events_store.events_of(store_engine, c.account_id) == []
    with Session(store_engine) as session:
        gw = session.get(Gateway, c.eligible_gateway)
        assert gw is not None and gw.removed_at is None
