"""The member's side in the store, on SQLite and PostgreSQL: one pending change of e-mail
per member, the new address unique among members (tombstones included), a link valid
only while pending and unexpired, and the circle-cancellation mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain.enrollment import CancelApplicationInput, RecordApplicationInput
from domain.errors import ErrorCode
from domain.member import ApplyEmailChangeInput, IssueEmailChangeInput
from store import enrollment as enrollment_store
from store import member as member_store
from store import signup as signup_store
from store.enrollment import RuleViolation, as_utc
from store.tables import MemberEmailChange
from tests.factories import Customer
from tests.store.test_signup_store import applied, confirm_holder, member_input

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TTL = timedelta(hours=24)


def member(engine: Engine, email: str) -> tuple[int, Customer]:
    customer = applied(engine)
    ticket = signup_store.open_signup(engine, email)
    confirm_holder(engine, ticket.signup_id, customer)
    row = signup_store.register_member(engine, member_input(ticket.signup_id, customer))
    assert row.id is not None
    return row.id, customer


def issue(engine: Engine, member_id: int, new: str, at: datetime = NOW) -> tuple[str, str | None]:
    change_id = member_store.record_email_change(engine, member_id, new, at)
    token, _ = member_store.issue_email_change(
        engine,
        IssueEmailChangeInput(
            member_id=member_id, change_id=change_id, requested_at=at, expires_at=at + TTL
        ),
    )
    return change_id, token


def apply(engine: Engine, member_id: int, change_id: str, token: str, at: datetime) -> str:
    return member_store.apply_email_change(
        engine,
        ApplyEmailChangeInput(
            member_id=member_id,
            change_id=change_id,
            token_sha256=signup_store.token_hash(token),
            at=at,
        ),
    )


def test_one_pending_change_per_member_is_a_constraint(store_engine: Engine) -> None:
    member_id, _ = member(store_engine, "one@example.com")
    issue(store_engine, member_id, "a@example.com")
    with Session(store_engine) as session, pytest.raises(sa.exc.IntegrityError):
        session.add(
            MemberEmailChange(
                member_id=member_id,
                new_email="b@example.com",
                status="pending",
                requested_at=NOW,
                expires_at=NOW + TTL,
            )
        )
        session.commit()


def test_a_newer_link_replaces_the_older_and_each_is_single_use(store_engine: Engine) -> None:
    member_id, _ = member(store_engine, "two@example.com")
    first, first_token = issue(store_engine, member_id, "c@example.com")
    second, second_token = issue(store_engine, member_id, "c@example.com", NOW + timedelta(hours=1))
    assert first_token and second_token
    with pytest.raises(RuleViolation) as err:
        apply(store_engine, member_id, first, first_token, NOW + timedelta(hours=2))
    assert err.value.code == ErrorCode.EMAIL_CHANGE_REPLACED
    # a wrong token for the right change is unknown, not a hint
    with pytest.raises(RuleViolation) as err:
        apply(store_engine, member_id, second, first_token, NOW + timedelta(hours=2))
    assert err.value.code == ErrorCode.EMAIL_CHANGE_UNKNOWN
    assert apply(store_engine, member_id, second, second_token, NOW + timedelta(hours=2)) == second
    assert apply(store_engine, member_id, second, second_token, NOW + timedelta(hours=3)) == second
    assert member_store.email_of(store_engine, member_id) == "c@example.com"
    change = member_store.change_for_token(store_engine, second_token)
    assert change is not None and change.old_email == "two@example.com"
    assert member_store.refusal_for(change, NOW) == ErrorCode.EMAIL_CHANGE_USED


def test_the_link_is_dead_at_its_expiry_even_before_the_timer(store_engine: Engine) -> None:
    member_id, _ = member(store_engine, "three@example.com")
    change_id, token = issue(store_engine, member_id, "d@example.com")
    assert token
    with pytest.raises(RuleViolation) as err:
        apply(store_engine, member_id, change_id, token, NOW + TTL)
    assert err.value.code == ErrorCode.EMAIL_CHANGE_EXPIRED
    member_store.expire_email_change(store_engine, change_id, NOW + TTL)
    change = member_store.change_for_token(store_engine, token)
    assert change is not None and change.status == "expired"


def test_a_taken_address_gets_no_link_and_a_cancelled_member_changes_nothing(
    store_engine: Engine,
) -> None:
    member_id, _ = member(store_engine, "four@example.com")
    other_id, _ = member(store_engine, "five@example.com")
    _, token = issue(store_engine, member_id, "five@example.com")
    assert token is None  # taken: a neutral mail, no link
    # cancelled members keep their address: still taken
    signup_store.cancel_member(store_engine, "five@example.com", NOW)
    _, token = issue(store_engine, member_id, "five@example.com")
    assert token is None
    # a link mailed before 退会 does nothing after it
    change_id, token = issue(store_engine, member_id, "six@example.com")
    assert token
    signup_store.cancel_member(store_engine, "four@example.com", NOW)
    with pytest.raises(RuleViolation) as err:
        apply(store_engine, member_id, change_id, token, NOW + timedelta(hours=1))
    assert err.value.code == ErrorCode.MEMBER_CANCELLED
    assert other_id != member_id


def test_the_unique_address_decides_a_late_taker(store_engine: Engine) -> None:
    member_id, _ = member(store_engine, "seven@example.com")
    change_id, token = issue(store_engine, member_id, "eight@example.com")
    assert token
    member(store_engine, "eight@example.com")  # registered meanwhile
    with pytest.raises(RuleViolation) as err:
        apply(store_engine, member_id, change_id, token, NOW + timedelta(hours=1))
    assert err.value.code == ErrorCode.EMAIL_CHANGE_UNAVAILABLE
    assert member_store.email_of(store_engine, member_id) == "seven@example.com"


def test_circle_cancellation_marks_the_member_until_applied_again(store_engine: Engine) -> None:
    member_id, customer = member(store_engine, "nine@example.com")
    account, gateway = customer.account_id, customer.eligible_gateway
    enrollment_store.cancel_application(
        store_engine,
        CancelApplicationInput(
            key="cancel-1", account_id=account, gateway_id=gateway, cancelled_at=NOW
        ),
    )
    assert member_store.mark_circle_cancelled(store_engine, account, gateway, NOW) == member_id
    later = NOW + timedelta(hours=1)
    assert member_store.mark_circle_cancelled(store_engine, account, gateway, later) == member_id
    record = member_store.member_record(store_engine, member_id)
    assert record is not None and (record.status, record.circle_cancelled_at) == ("suspended", NOW)
    assert (member_store.suspended_members(store_engine)[0][1]) == gateway
    enrollment_store.record_application(
        store_engine,
        RecordApplicationInput(
            key="again", account_id=account, gateway_id=gateway, applied_at=later
        ),
    )
    record = member_store.member_record(store_engine, member_id)
    assert record is not None and (record.status, record.circle_cancelled_at) == ("active", None)
    assert member_store.suspended_members(store_engine) == []
    # no member on a gateway: nothing to mark
    other = applied(store_engine)
    assert (
        member_store.mark_circle_cancelled(
            store_engine, other.account_id, other.eligible_gateway, NOW
        )
        is None
    )


def test_cancelling_answers_with_the_tombstone_the_first_time_and_after(
    store_engine: Engine,
) -> None:
    """The membership activity reads the returned member's ``cancelled_at``: the first
    cancellation's row, read after its commit, and the same row on a retry."""
    member(store_engine, "seven@example.com")
    first = signup_store.cancel_member(store_engine, "seven@example.com", NOW)
    assert first.cancelled_at is not None
    assert (first.status, as_utc(first.cancelled_at)) == ("cancelled", NOW)
    again = signup_store.cancel_member(store_engine, "seven@example.com", NOW + timedelta(days=1))
    assert again.cancelled_at is not None
    assert (again.status, as_utc(again.cancelled_at)) == ("cancelled", NOW)
