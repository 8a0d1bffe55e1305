"""Store rules, on SQLite and PostgreSQL alike (``store_engine`` runs each test on both)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.enrollment import (
    CancelApplicationInput,
    RecordApplicationInput,
    RecordConsentInput,
    RecordedApplication,
)
from domain.errors import ErrorCode
from store import enrollment as enrollment_store
from store.starts import mark_started
from store.tables import Account, CircleApplication, Consent, Gateway
from tests.factories import Customer, add_customer, add_points_member, cancel_application, random_id
from tests.statements import other_attempt_first, statements_of
from tests.workflows.harness import TERMS


def apply(engine: Engine, account_id: str, gateway_id: str, key: str | None = None) -> object:
    return enrollment_store.record_application(
        engine,
        RecordApplicationInput(
            key=key or random_id(16),
            account_id=account_id,
            gateway_id=gateway_id,
            applied_at=datetime.now(UTC),
        ),
    )


def consent_entry(account_id: str, key: str) -> RecordConsentInput:
    return RecordConsentInput(
        key=key,
        account_id=account_id,
        terms=TERMS,
        decision="agreed",
        decided_at=datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
        channel="web",
    )


def test_application_rules(store_engine: Engine) -> None:
    customer = add_customer(store_engine)
    stranger = add_customer(store_engine)
    with pytest.raises(enrollment_store.RuleViolation) as err:
        apply(store_engine, customer.account_id, stranger.eligible_gateway)
    assert err.value.code == ErrorCode.GATEWAY_NOT_OWNED
    with pytest.raises(enrollment_store.RuleViolation) as err:
        apply(store_engine, customer.account_id, "NOSUCHGATEWY")
    assert err.value.code == ErrorCode.GATEWAY_NOT_OWNED
    with pytest.raises(enrollment_store.RuleViolation) as err:
        apply(store_engine, customer.account_id, customer.other_gateway)
    assert err.value.code == ErrorCode.GATEWAY_NOT_ELIGIBLE

    recorded = enrollment_store.record_application(
        store_engine,
        RecordApplicationInput(
            key="k1",
            account_id=customer.account_id,
            gateway_id=customer.eligible_gateway,
            applied_at=datetime(2026, 6, 20, 10, 25, tzinfo=UTC),
        ),
    )
    assert recorded.pcs_serial == customer.eligible_pcs
    assert recorded.applied_at == datetime(2026, 6, 20, 10, 25, tzinfo=UTC)
    # The same request again (an activity retry) is the same application, not a refusal.
    again = apply(store_engine, customer.account_id, customer.eligible_gateway, key="k1")
    assert again == recorded
    with pytest.raises(enrollment_store.RuleViolation) as err:
        apply(store_engine, customer.account_id, customer.eligible_gateway)
    assert err.value.code == ErrorCode.GATEWAY_ALREADY_APPLIED


def test_one_active_application_under_concurrency(store_engine: Engine) -> None:
    customer = add_customer(store_engine)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            apply(store_engine, customer.account_id, customer.eligible_gateway)
            outcomes.append("applied")
        except enrollment_store.RuleViolation as exc:
            outcomes.append(exc.code.value)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["applied", "gateway_already_applied"]
    with Session(store_engine) as session:
        rows = session.exec(
            select(CircleApplication).where(
                CircleApplication.gateway_id == customer.eligible_gateway
            )
        ).all()
    assert [r.status for r in rows] == ["active"]


def application_request(customer: Customer, key: str) -> RecordApplicationInput:
    """申込確定 of the customer's eligible gateway under ``key`` (at a fixed time)."""
    return RecordApplicationInput(
        key=key,
        account_id=customer.account_id,
        gateway_id=customer.eligible_gateway,
        applied_at=datetime(2026, 6, 20, 10, 25, tzinfo=UTC),
    )


def test_two_attempts_of_one_application_at_once_make_one(store_engine: Engine) -> None:
    """An activity retried while its first attempt still runs: both attempts carry the
    request's key, and both answer with the one application (never a refusal)."""
    customer = add_customer(store_engine)
    request = application_request(customer, "one-request")
    barrier = threading.Barrier(2)
    answers: list[object] = []

    def attempt() -> None:
        barrier.wait()
        try:
            answers.append(enrollment_store.record_application(store_engine, request))
        except Exception as exc:  # the test reports any failure
            answers.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 2 and answers[0] == answers[1], answers
    assert isinstance(answers[0], RecordedApplication)
    assert answers[0].applied_at == request.applied_at
    assert request_keys(store_engine, customer.account_id) == ["one-request"]


def request_keys(engine: Engine, account_id: str) -> list[str]:
    """The request keys of the account's applications."""
    with Session(engine) as session:
        rows = session.exec(
            select(CircleApplication).where(CircleApplication.account_id == account_id)
        ).all()
    return [r.request_key for r in rows]


def test_an_attempt_that_loses_the_race_answers_with_the_winners(store_engine: Engine) -> None:
    """The race forced: the other attempt of the request commits between this attempt's
    read (no application under the key yet) and its writes, so this attempt's INSERT
    collides and it answers with the application the other one wrote."""
    customer = add_customer(store_engine)
    request = application_request(customer, "raced-request")
    with other_attempt_first(
        store_engine,
        "UPDATE points_members",  # this attempt's first write: the membership's resumption
        "circle_applications",
        lambda: enrollment_store.record_application(store_engine, request),
    ) as race:
        lost = enrollment_store.record_application(store_engine, request)
    assert len(race.inserts) == 2, race.inserts  # the winner's, then the loser's
    assert lost == race.won[0]
    assert lost.applied_at == request.applied_at
    assert request_keys(store_engine, customer.account_id) == ["raced-request"]


def test_cancel_then_apply_again(store_engine: Engine) -> None:
    customer = add_customer(store_engine)
    apply(store_engine, customer.account_id, customer.eligible_gateway)
    cancel = CancelApplicationInput(
        key="c1",
        account_id=customer.account_id,
        gateway_id=customer.eligible_gateway,
        cancelled_at=datetime.now(UTC),
    )
    views = enrollment_store.cancel_application(store_engine, cancel)
    assert {v.gateway_id: v.application.value for v in views}[customer.eligible_gateway] == (
        "cancelled"
    )
    # A retried cancellation is not an error; a cancellation with nothing active is.
    enrollment_store.cancel_application(store_engine, cancel)
    with pytest.raises(enrollment_store.RuleViolation) as err:
        enrollment_store.cancel_application(
            store_engine, cancel.model_copy(update={"cancelled_at": datetime.now(UTC)})
        )
    assert err.value.code == ErrorCode.APPLICATION_NOT_FOUND
    apply(store_engine, customer.account_id, customer.eligible_gateway)


def test_consent_ledger_records_once_per_request(store_engine: Engine) -> None:
    customer = add_customer(store_engine)
    entry = consent_entry(customer.account_id, "consent-1")
    enrollment_store.record_consent(store_engine, entry)
    enrollment_store.record_consent(store_engine, entry)
    with Session(store_engine) as session:
        rows = session.exec(select(Consent).where(Consent.account_id == customer.account_id)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.document, row.version, row.content_sha256, row.decision) == (
        TERMS.document,
        TERMS.version,
        TERMS.content_sha256,
        "agreed",
    )
    stored = row.decided_at if row.decided_at.tzinfo else row.decided_at.replace(tzinfo=UTC)
    assert stored == entry.decided_at


def test_accounts_and_gateways_are_unique(store_engine: Engine) -> None:
    customer = add_customer(store_engine)
    with pytest.raises(enrollment_store.RuleViolation) as err:
        enrollment_store.create_account(
            store_engine,
            Account(
                email=customer.email, password_hash="x", display_name="x", holder_type="individual"
            ),
            [],
        )
    assert err.value.code == ErrorCode.ACCOUNT_EXISTS
    with pytest.raises(enrollment_store.RuleViolation) as err:
        enrollment_store.create_account(
            store_engine,
            Account(
                email="new@example.com",
                password_hash="x",
                display_name="x",
                holder_type="individual",
            ),
            [
                Gateway(
                    account_id="",
                    gateway_id=customer.eligible_gateway,
                    pcs_serial="ABCDEFGH",
                    model="KPBP-A",
                    pv_unit_in_use=True,
                    battery_unit_in_use=True,
                )
            ],
        )
    assert err.value.code == ErrorCode.GATEWAY_REGISTERED
    with Session(store_engine) as session:
        assert (
            session.exec(select(Account).where(Account.email == "new@example.com")).first() is None
        )


def test_eligibility_reasons(store_engine: Engine) -> None:
    corporate = add_customer(store_engine, holder_type="corporate")
    result = enrollment_store.check_eligibility(store_engine, corporate.account_id)
    assert (result.eligible, result.reason) == (False, "corporate_account")
    customer = add_customer(store_engine)
    result = enrollment_store.check_eligibility(store_engine, customer.account_id)
    assert result.eligible and result.reason is None
    assert {g.gateway_id: g.reasons for g in result.gateways} == {
        customer.eligible_gateway: [],
        customer.other_gateway: ["battery_unit_not_in_use"],
    }
    assert enrollment_store.check_eligibility(store_engine, "missing").reason == "account_not_found"


def test_application_knows_the_points_membership(store_engine: Engine) -> None:
    """Re-joining after 解約: an active member is reported (the journey goes straight to
    enrolled); a cancelled membership's tombstone refuses the application, and nothing is
    written."""
    member = add_customer(store_engine, second_eligible=True)
    add_points_member(store_engine, member)
    recorded = enrollment_store.record_application(
        store_engine,
        RecordApplicationInput(
            key=random_id(16),
            account_id=member.account_id,
            gateway_id=member.other_gateway,
            applied_at=datetime.now(UTC),
        ),
    )
    assert recorded.points_member_gateway_id == member.eligible_gateway

    plain = add_customer(store_engine)
    recorded = enrollment_store.record_application(
        store_engine,
        RecordApplicationInput(
            key=random_id(16),
            account_id=plain.account_id,
            gateway_id=plain.eligible_gateway,
            applied_at=datetime.now(UTC),
        ),
    )
    assert recorded.points_member_gateway_id is None

    gone = add_customer(store_engine)
    add_points_member(store_engine, gone, status="cancelled")
    with pytest.raises(enrollment_store.RuleViolation) as info:
        apply(store_engine, gone.account_id, gone.eligible_gateway)
    assert info.value.code == ErrorCode.POINTS_MEMBERSHIP_CANCELLED
    with Session(store_engine) as session:
        rows = session.exec(
            select(CircleApplication).where(CircleApplication.account_id == gone.account_id)
        ).all()
    assert rows == []


def test_a_consent_is_one_statement_first_time_and_on_retry(store_engine: Engine) -> None:
    """The customer's consent waits for this write: one INSERT (a retry's does nothing),
    no look-up before it."""
    customer = add_customer(store_engine)
    entry = consent_entry(customer.account_id, "consent-one-statement")
    with statements_of(store_engine) as statements:
        enrollment_store.record_consent(store_engine, entry)
        enrollment_store.record_consent(store_engine, entry)
    assert [st.split()[0].upper() for st in statements] == ["INSERT", "INSERT"]


def test_an_application_reads_nothing_twice(store_engine: Engine) -> None:
    """申込確定 waits for this write: after the commit it reads only what the answer needs
    (the member, the gateways and their applications), not the rows it has just written
    or read again."""
    customer = add_customer(store_engine)
    with statements_of(store_engine) as statements:
        recorded = apply(store_engine, customer.account_id, customer.eligible_gateway)
    assert isinstance(recorded, RecordedApplication)
    assert recorded.gateway_id == customer.eligible_gateway
    reads = [s for s in statements if s.startswith("SELECT")]
    writes = [s for s in statements if not s.startswith("SELECT")]
    # the suspended memberships' resumption (none here), then the application's INSERT
    assert [s.split()[0] for s in writes] == ["UPDATE", "INSERT"], statements
    # before: the gateway with the request key's application and its membership, in one;
    # after: the member, the gateways, their applications
    assert len(reads) == 4, statements


def test_an_application_caller_in_one_statement(store_engine: Engine) -> None:
    """What the API checks and derives an application's update ID from before 申込確定 or
    解約: the account, its journey's start and its counts for the gateway, in one
    statement."""
    customer = add_customer(store_engine)
    other = add_customer(store_engine)

    def caller(account_id: str, gateway_id: str) -> tuple[bool, int, int] | None:
        found = enrollment_store.application_caller(store_engine, account_id, gateway_id)
        return None if found is None else (found.started, found.applications, found.cancelled)

    assert caller("no-such-account", customer.eligible_gateway) is None
    assert caller(customer.account_id, customer.eligible_gateway) == (False, 0, 0)
    for account in (customer, other):
        mark_started(
            store_engine, account.account_id, f"wf-{account.account_id}", now=datetime.now(UTC)
        )
    apply(store_engine, customer.account_id, customer.eligible_gateway)
    apply(store_engine, other.account_id, other.eligible_gateway)
    assert caller(customer.account_id, customer.eligible_gateway) == (True, 1, 0)
    cancel_application(store_engine, customer, "count-c1")
    apply(store_engine, customer.account_id, customer.eligible_gateway)
    with statements_of(store_engine) as statements:
        assert caller(customer.account_id, customer.eligible_gateway) == (True, 2, 1)
    assert len(statements) == 1, statements
    # another account's gateway is not counted for this one
    assert caller(customer.account_id, other.eligible_gateway) == (True, 0, 0)
