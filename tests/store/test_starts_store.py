"""The outbox of journey starts, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.errors import ErrorCode
from store import starts as starts_store
from store.enrollment import RuleViolation
from store.tables import Account, Enrollment, Gateway, JourneyStart
from tests.factories import add_customer, random_id

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def account(email: str, name: str = "告知 太郎") -> Account:
    return Account(email=email, password_hash="hash", display_name=name, holder_type="individual")


def gateways(gateway_id: str, battery: bool = True) -> list[Gateway]:
    return [
        Gateway(
            account_id="",
            gateway_id=gateway_id,
            pcs_serial="PCS00001",
            model="KPBP-A",
            pv_unit_in_use=True,
            battery_unit_in_use=battery,
        )
    ]


def record(
    engine: Engine,
    email: str,
    gateway_id: str,
    *,
    now: datetime = NOW,
    name: str = "告知 太郎",
    battery: bool = True,
) -> starts_store.Announced:
    return starts_store.record_announcement(
        engine,
        account(email, name),
        gateways(gateway_id, battery),
        now=now,
        lease=LEASE,
        same_password=lambda stored: stored == "hash",
    )


def test_the_account_and_its_start_are_one_transaction(store_engine: Engine) -> None:
    gw = random_id(12)
    first = record(store_engine, "a@example.com", gw)
    assert (first.created, first.started, first.claimed) == (True, False, True)
    row = starts_store.get_start(store_engine, first.account_id)
    assert row is not None
    assert (row.status, row.attempts, row.lease_until) == ("pending", 1, NOW + LEASE)

    # A refused account leaves no start behind (the gateway belongs to another account).
    with pytest.raises(RuleViolation) as refused:
        record(store_engine, "b@example.com", gw)
    assert refused.value.code == ErrorCode.GATEWAY_REGISTERED
    with Session(store_engine) as session:
        assert len(session.exec(select(JourneyStart)).all()) == 1
        assert session.exec(select(Account).where(Account.email == "b@example.com")).first() is None


def test_the_same_announcement_again_is_no_conflict(store_engine: Engine) -> None:
    gw = random_id(12)
    first = record(store_engine, "a@example.com", gw)
    # While the first attempt holds the lease, a retry does not take it.
    again = record(store_engine, "a@example.com", gw, now=NOW + timedelta(seconds=1))
    assert (again.account_id, again.created, again.started, again.claimed) == (
        first.account_id,
        False,
        False,
        False,
    )
    # Once the lease is free, the retry claims the start and may complete it.
    starts_store.release(store_engine, first.account_id, retry_at=NOW, error="rpc:UNAVAILABLE")
    retried = record(store_engine, "a@example.com", gw, now=NOW + timedelta(seconds=2))
    assert retried.claimed
    starts_store.mark_started(store_engine, first.account_id, "enrollment-x", now=NOW)
    done = record(store_engine, "a@example.com", gw, now=NOW + timedelta(seconds=3))
    assert (done.started, done.claimed) == (True, False)

    different: list[tuple[str, str, bool]] = [
        (gw, "別人 次郎", True),  # another name
        (gw, "告知 太郎", False),  # the gateway's units differ
        (random_id(12), "告知 太郎", True),  # another gateway
    ]
    for gateway_id, name, battery in different:
        with pytest.raises(RuleViolation) as conflict:
            record(store_engine, "a@example.com", gateway_id, name=name, battery=battery)
        assert conflict.value.code == ErrorCode.ACCOUNT_EXISTS
    with pytest.raises(RuleViolation):
        starts_store.record_announcement(
            store_engine,
            account("a@example.com"),
            gateways(gw),
            now=NOW,
            lease=LEASE,
            same_password=lambda stored: False,  # another password
        )


def test_an_account_from_before_the_outbox_gets_its_start(store_engine: Engine) -> None:
    customer = add_customer(store_engine)  # created without a start row
    row = starts_store.ensure_start(store_engine, customer.account_id)
    assert row.status == "pending"
    assert starts_store.ensure_start(store_engine, customer.account_id).status == "pending"
    assert starts_store.claim_due(store_engine, now=NOW, lease=LEASE, limit=10) == [
        customer.account_id
    ]


def test_exactly_one_of_many_claimants_wins(store_engine: Engine) -> None:
    first = record(store_engine, "a@example.com", random_id(12))
    starts_store.release(store_engine, first.account_id, retry_at=NOW)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claimant() -> None:
        barrier.wait()
        wins.append(
            starts_store.claim(
                store_engine, first.account_id, now=NOW + timedelta(seconds=1), lease=LEASE
            )
        )

    threads = [threading.Thread(target=claimant) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    row = starts_store.get_start(store_engine, first.account_id)
    assert row is not None and row.attempts == 2


def test_the_reconciler_sees_only_due_starts(store_engine: Engine) -> None:
    leased = record(store_engine, "a@example.com", random_id(12))
    free = record(store_engine, "b@example.com", random_id(12))
    starts_store.release(store_engine, free.account_id, retry_at=NOW)
    assert starts_store.claim_due(store_engine, now=NOW, lease=LEASE, limit=10) == [free.account_id]
    # Both leases are now held; after they run out, both are due again.
    assert starts_store.claim_due(store_engine, now=NOW, lease=LEASE, limit=10) == []
    later = NOW + LEASE + timedelta(seconds=1)
    assert set(starts_store.claim_due(store_engine, now=later, lease=LEASE, limit=10)) == {
        leased.account_id,
        free.account_id,
    }

    starts_store.mark_started(store_engine, leased.account_id, "enrollment-1", now=later)
    starts_store.mark_started(store_engine, leased.account_id, "enrollment-1", now=later)
    much_later = later + 2 * LEASE
    assert starts_store.claim_due(store_engine, now=much_later, lease=LEASE, limit=10) == [
        free.account_id
    ]
    assert [r.account_id for r in starts_store.pending_starts(store_engine)] == [free.account_id]
    with Session(store_engine) as session:
        mapped = session.get(Enrollment, leased.account_id)
        assert mapped is not None and mapped.workflow_id == "enrollment-1"
    row = starts_store.get_start(store_engine, leased.account_id)
    assert row is not None and (row.status, row.lease_until) == ("started", None)
