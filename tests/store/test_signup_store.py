"""Points signup rules in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.enrollment import RecordApplicationInput
from domain.errors import ErrorCode
from domain.holder import AskHolderInput, RecordHolderDecisionInput
from domain.signup import (
    GatewayMatch,
    IssueLinkInput,
    LinkIssued,
    RecordLinkInput,
    RegisterMemberInput,
    Service,
)
from store import enrollment as enrollment_store
from store import holder as holder_store
from store import signup as signup_store
from store.enrollment import RuleViolation
from store.tables import Consent, PointSignup, PointsMember, SignupLink
from tests.factories import Customer, add_customer
from tests.statements import statements_of
from tests.workflows.signup_harness import INFO, SETTINGS

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
KEY = b"k" * 32


def race(*calls: Callable[[], object]) -> list[object]:
    """The calls at once, each in a thread: what each returned, the code of a rule it
    refused by, or any other exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except RuleViolation as exc:
            results[i] = exc.code
        except Exception as exc:  # shown by the test's assertion, not lost in the thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def member_input(signup_id: str, customer: Customer) -> RegisterMemberInput:
    return RegisterMemberInput(
        signup_id=signup_id,
        service=Service.OMRON_MONITORING,
        gateway=GatewayMatch(
            gateway_id=customer.eligible_gateway,
            pcs_serial=customer.eligible_pcs,
            account_id=customer.account_id,
        ),
        info=INFO,
        password_hash="$argon2id$test",
        agreed=[(SETTINGS.points_terms(), NOW), (SETTINGS.points_privacy(), NOW)],
        registered_at=NOW,
    )


def applied(engine: Engine) -> Customer:
    """A customer whose circle application for the eligible gateway is active."""
    customer = add_customer(engine)
    enrollment_store.record_application(
        engine,
        RecordApplicationInput(
            key=uuid.uuid4().hex,
            account_id=customer.account_id,
            gateway_id=customer.eligible_gateway,
            applied_at=NOW,
        ),
    )
    return customer


def confirm_holder(engine: Engine, signup_id: str, customer: Customer) -> str:
    """The circle account holder confirmed this signup (as the confirm route records it)."""
    asked = holder_store.ask_holder(
        engine,
        AskHolderInput(
            signup_id=signup_id,
            gateway=member_input(signup_id, customer).gateway,
            seq=1,
            asked_at=NOW,
            ttl=timedelta(hours=24),
            asks_per_gateway_per_day=100,
        ),
        KEY,
    )
    assert asked.needed and asked.confirmation_id
    holder_store.record_decision(
        engine,
        RecordHolderDecisionInput(
            signup_id=signup_id,
            confirmation_id=asked.confirmation_id,
            confirm=True,
            channel="mail_link",
            decided_at=NOW,
        ),
    )
    return asked.confirmation_id


def test_two_entries_of_one_address_reach_one_signup(store_engine: Engine) -> None:
    a, b = race(
        lambda: signup_store.open_signup(store_engine, "race@example.com"),
        lambda: signup_store.open_signup(store_engine, "race@example.com"),
    )
    assert a == b
    with Session(store_engine) as session:
        rows = session.exec(
            select(PointSignup).where(PointSignup.email == "race@example.com")
        ).all()
    assert [r.status for r in rows] == ["pending"]


def test_two_signups_racing_for_one_gateway_make_one_member(store_engine: Engine) -> None:
    customer = applied(store_engine)
    first = signup_store.open_signup(store_engine, customer.email)  # the holder's own
    second = signup_store.open_signup(store_engine, "second@example.com")
    confirm_holder(store_engine, second.signup_id, customer)
    outcomes = race(
        lambda: signup_store.register_member(store_engine, member_input(first.signup_id, customer)),
        lambda: signup_store.register_member(
            store_engine, member_input(second.signup_id, customer)
        ),
    )
    assert sum(isinstance(o, PointsMember) for o in outcomes) == 1
    assert ErrorCode.GATEWAY_ALREADY_MEMBER in outcomes
    with Session(store_engine) as session:
        assert len(session.exec(select(PointsMember)).all()) == 1


def test_two_attempts_of_one_registration_at_once_make_one_member(store_engine: Engine) -> None:
    """An activity retried while its first attempt still runs: both get the member."""
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, customer.email)
    entry = member_input(ticket.signup_id, customer)
    outcomes = race(
        lambda: signup_store.register_member(store_engine, entry),
        lambda: signup_store.register_member(store_engine, entry),
    )
    assert all(isinstance(o, PointsMember) for o in outcomes), outcomes
    assert len({o.id for o in outcomes}) == 1  # type: ignore[attr-defined]


def test_registration_is_idempotent_and_a_cancelled_member_cannot_rejoin(
    store_engine: Engine,
) -> None:
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, "once@example.com")
    confirm_holder(store_engine, ticket.signup_id, customer)
    with statements_of(store_engine) as statements:
        member = signup_store.register_member(
            store_engine, member_input(ticket.signup_id, customer)
        )
    # STEP6 waits for this write: statements built once, one each (the member of the
    # signup, the reservation, the active application, the holder rule, the two consents,
    # the reservation closed, the member), nothing read back after the commit
    assert len(statements) == 7, statements
    assert statements[-1].split()[0] != "SELECT", statements
    assert member.id is not None and member.gateway_id == customer.eligible_gateway
    with Session(store_engine) as session:
        stored = session.get(PointsMember, member.id)
        consents = session.exec(
            select(Consent.document).where(Consent.account_id == customer.account_id)
        ).all()
        signup = session.get(PointSignup, ticket.signup_id)
    assert stored is not None and signup is not None
    fields = ("signup_id", "email", "gateway_id", "account_id", "name", "phone", "status")
    assert [getattr(stored, f) for f in fields] == [getattr(member, f) for f in fields]
    assert sorted(consents) == ["smile_e_point_privacy", "smile_e_point_terms"]
    assert signup.status == "registered" and signup.closed_at is not None
    again = signup_store.register_member(store_engine, member_input(ticket.signup_id, customer))
    assert (member.id, member.email, member.status) == (again.id, again.email, again.status)

    signup_store.cancel_member(store_engine, "once@example.com", NOW)
    rejoin = signup_store.open_signup(store_engine, "once@example.com")
    assert rejoin.already_member  # the tombstone: no new reservation, a mail instead
    other = applied(store_engine)
    confirm_holder(store_engine, rejoin.signup_id, other)
    with pytest.raises(RuleViolation) as err:
        signup_store.register_member(store_engine, member_input(rejoin.signup_id, other))
    assert err.value.code == ErrorCode.EMAIL_ALREADY_MEMBER


def test_abandoning_releases_the_reservation(store_engine: Engine) -> None:
    ticket = signup_store.open_signup(store_engine, "gone@example.com")
    signup_store.release_signup(store_engine, ticket.signup_id, NOW)
    assert signup_store.open_signup(store_engine, "gone@example.com").signup_id != ticket.signup_id


KEY = b"test-link-key"


def test_links_keep_only_hashes_and_issue_idempotently(store_engine: Engine) -> None:
    """The old one-activity path (runs recorded before record_link): same link on retry."""
    ticket = signup_store.open_signup(store_engine, "link@example.com")
    inp = IssueLinkInput(signup_id=ticket.signup_id, seq=1, issued_at=NOW, ttl=timedelta(hours=24))
    token, issued = signup_store.issue_link(store_engine, KEY, inp)
    assert token is not None and issued.token_sha256 == signup_store.token_hash(token)
    assert issued.expires_at == NOW + timedelta(hours=24)
    # Not marked mailed (the attempt died after the relay may have taken the mail): the
    # retry mails the same link, so the first mail's link is not dead.
    retry_token, retry = signup_store.issue_link(store_engine, KEY, inp)
    assert retry_token == token and retry == issued
    signup_store.mark_link_mailed(store_engine, ticket.signup_id, 1)
    # Mailed: a retry sends nothing and reports the same link.
    assert signup_store.issue_link(store_engine, KEY, inp) == (None, retry)
    found = signup_store.signup_for_token(store_engine, token)
    assert found is not None and found.id == ticket.signup_id


def test_a_recorded_link_is_numbered_by_the_store_and_mailed_with_the_same_token(
    store_engine: Engine,
) -> None:
    ticket = signup_store.open_signup(store_engine, "derive@example.com")

    def record(key: str) -> LinkIssued:
        return signup_store.record_link(
            store_engine,
            KEY,
            RecordLinkInput(
                signup_id=ticket.signup_id, request_key=key, issued_at=NOW, ttl=timedelta(hours=24)
            ),
        )

    first = record("run-1:link:update-a")
    assert first.seq == 1
    assert record("run-1:link:update-a") == first  # a retried activity: the same link
    # Mailing it (twice, as a retry would) derives the same token, which the API finds.
    mailed = signup_store.link_to_mail(store_engine, KEY, ticket.signup_id, 1)
    again = signup_store.link_to_mail(store_engine, KEY, ticket.signup_id, 1)
    assert mailed == again and mailed.current
    assert signup_store.token_hash(mailed.token) == first.token_sha256
    found = signup_store.signup_for_token(store_engine, mailed.token)
    assert found is not None and found.id == ticket.signup_id
    # Nothing secret is stored: the row holds the hash and the salt, not the token.
    with Session(store_engine) as session:
        row = session.exec(select(SignupLink).where(SignupLink.seq == 1)).one()
    assert mailed.token not in (row.token_sha256, row.salt, row.request_key)

    # A new run (an operator ended the old one) continues the store's count.
    second = record("run-2:link:update-a")
    assert second.seq == 2 and second.token_sha256 != first.token_sha256
    assert not signup_store.link_to_mail(store_engine, KEY, ticket.signup_id, 1).current
    # Another key cannot re-derive it: refused, never a different (dead) link.
    with pytest.raises(signup_store.LinkKeyMismatch):
        signup_store.link_to_mail(store_engine, b"another-key", ticket.signup_id, 2)


def test_concurrent_records_get_distinct_numbers(store_engine: Engine) -> None:
    ticket = signup_store.open_signup(store_engine, "race-link@example.com")
    results = race(
        *(
            lambda key=key: signup_store.record_link(
                store_engine,
                KEY,
                RecordLinkInput(
                    signup_id=ticket.signup_id,
                    request_key=key,
                    issued_at=NOW,
                    ttl=timedelta(hours=24),
                ),
            )
            for key in ("a", "b", "c")
        )
    )
    assert sorted(r.seq for r in results if isinstance(r, LinkIssued)) == [1, 2, 3]
