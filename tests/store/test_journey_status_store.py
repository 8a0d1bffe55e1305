"""The journey status rows, on SQLite and PostgreSQL: a write lands only when newer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from domain.enrollment import EnrollmentStatus, PublishStatusInput, Stage
from store import journey_status
from store import starts as starts_store
from store.journey_status import CallerJourney
from tests.factories import add_customer

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def publish(
    engine: Engine, account_id: str, run_id: str, seq: int, at: datetime, stage: Stage
) -> bool:
    return journey_status.publish(
        engine,
        PublishStatusInput(
            account_id=account_id,
            run_id=run_id,
            seq=seq,
            published_at=at,
            status=EnrollmentStatus(stage=stage, stage_entered_at=at, reminders_sent=seq),
        ),
    )


def test_newer_writes_land_and_older_ones_never_move_it_back(store_engine: Engine) -> None:
    account = add_customer(store_engine).account_id
    assert journey_status.read(store_engine, account) is None
    assert publish(store_engine, account, "run-1", 1, T0, Stage.CHECKING)
    assert publish(store_engine, account, "run-1", 2, T0, Stage.AWAITING_CONSENT)
    # A retried write of seq 1 (same time) and an older time both lose.
    assert not publish(store_engine, account, "run-1", 1, T0, Stage.CHECKING)
    assert not publish(store_engine, account, "run-1", 9, T0 - timedelta(seconds=1), Stage.CHECKING)
    row = journey_status.read(store_engine, account)
    assert row is not None and (row.run_id, row.status.stage) == ("run-1", Stage.AWAITING_CONSENT)
    # A later run (continued as new, or a journey started again) counts from 1 again.
    later = T0 + timedelta(minutes=5)
    assert publish(store_engine, account, "run-2", 1, later, Stage.AWAITING_APPLICATION)
    row = journey_status.read(store_engine, account)
    assert row is not None and row.run_id == "run-2"
    assert (row.status.stage, row.status.reminders_sent) == (Stage.AWAITING_APPLICATION, 1)
    assert row.status.stage_entered_at == later


def test_the_callers_check_tells_a_missing_account_a_new_one_and_a_started_one(
    store_engine: Engine,
) -> None:
    account = add_customer(store_engine).account_id
    assert journey_status.signed_in(store_engine, "no-such-account") is None
    assert journey_status.read_for_caller(store_engine, "no-such-account") is None
    assert journey_status.signed_in(store_engine, account) is False
    assert journey_status.read_for_caller(store_engine, account) == CallerJourney(
        started=False, published=None
    )
    starts_store.mark_started(store_engine, account, f"enrollment-{account}", now=T0)
    assert journey_status.signed_in(store_engine, account) is True
    assert journey_status.read_for_caller(store_engine, account) == CallerJourney(
        started=True, published=None
    )
    assert publish(store_engine, account, "run-1", 1, T0, Stage.AWAITING_CONSENT)
    found = journey_status.read_for_caller(store_engine, account)
    assert found is not None and found.started and found.published is not None
    assert (found.published.run_id, found.published.status.stage) == (
        "run-1",
        Stage.AWAITING_CONSENT,
    )
    # Another account's rows never answer for this one.
    other = add_customer(store_engine).account_id
    assert journey_status.read_for_caller(store_engine, other) == CallerJourney(
        started=False, published=None
    )
