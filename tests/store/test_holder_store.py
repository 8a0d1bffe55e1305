"""Knowing the two IDs is not enough: the store's part, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.errors import ErrorCode
from domain.holder import (
    AskHolderInput,
    CheckGatewayInput,
    GatewayOutcome,
    HolderAsked,
    RecordHolderDecisionInput,
)
from store import holder as holder_store
from store import signup as signup_store
from store.enrollment import RuleViolation
from store.tables import HolderConfirmationRequest, PointsMember
from tests.factories import Customer, cancel_application
from tests.statements import other_attempt_first, statements_of
from tests.store.test_signup_store import KEY, NOW, applied, confirm_holder, member_input, race


def entry(
    engine: Engine, signup_id: str, customer: Customer, n: int, serial: str, hours: float = 0
) -> GatewayOutcome:
    return holder_store.check_gateway_entry(
        engine,
        CheckGatewayInput(
            signup_id=signup_id,
            attempt_key=f"{signup_id}:gateway:{n}",
            gateway_id=customer.eligible_gateway,
            pcs_serial=serial,
            at=NOW + timedelta(hours=hours),
            failures_per_day=10,
        ),
    ).outcome


def ask(engine: Engine, signup_id: str, customer: Customer, seq: int, cap: int = 3) -> object:
    return holder_store.ask_holder(
        engine,
        AskHolderInput(
            signup_id=signup_id,
            gateway=member_input(signup_id, customer).gateway,
            seq=seq,
            asked_at=NOW,
            ttl=timedelta(hours=24),
            asks_per_gateway_per_day=cap,
        ),
        KEY,
    )


def test_a_cancelled_application_gets_no_member(store_engine: Engine) -> None:
    """Today's hole: STEP3 matched, then the circle application was cancelled."""
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, customer.email)
    cancel_application(store_engine, customer, "cancel", NOW)
    with pytest.raises(RuleViolation) as err:
        signup_store.register_member(store_engine, member_input(ticket.signup_id, customer))
    assert err.value.code == ErrorCode.APPLICATION_NOT_ACTIVE
    with Session(store_engine) as session:
        assert session.exec(select(PointsMember)).all() == []


def test_a_stranger_registers_only_once_the_holder_confirmed(store_engine: Engine) -> None:
    customer = applied(store_engine)
    stranger = signup_store.open_signup(store_engine, "stranger@example.com")
    with pytest.raises(RuleViolation) as err:
        signup_store.register_member(store_engine, member_input(stranger.signup_id, customer))
    assert err.value.code == ErrorCode.HOLDER_CONFIRMATION_PENDING

    # A pending request is not a confirmation.
    ask(store_engine, stranger.signup_id, customer, 1)
    with pytest.raises(RuleViolation):
        signup_store.register_member(store_engine, member_input(stranger.signup_id, customer))
    confirm_holder(store_engine, stranger.signup_id, customer)  # request 1 again: confirmed
    member = signup_store.register_member(store_engine, member_input(stranger.signup_id, customer))
    assert member.email == "stranger@example.com"


def test_the_holders_own_address_needs_no_confirmation(store_engine: Engine) -> None:
    customer = applied(store_engine)
    own = signup_store.open_signup(store_engine, customer.email.upper())
    assert not ask(store_engine, own.signup_id, customer, 1).needed  # type: ignore[attr-defined]
    member = signup_store.register_member(store_engine, member_input(own.signup_id, customer))
    assert member.gateway_id == customer.eligible_gateway


def test_requests_keep_only_the_token_hash_and_replace_each_other(store_engine: Engine) -> None:
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, "family@example.com")
    with statements_of(store_engine) as statements:
        first = ask(store_engine, ticket.signup_id, customer, 1)
    # STEP3 waits for this: the addresses, this number's request, the day's requests, the
    # older one replaced, the new one; statements built once
    assert [q.split()[0] for q in statements] == ["SELECT"] * 3 + ["UPDATE", "INSERT"]
    assert ask(store_engine, ticket.signup_id, customer, 1) == first  # a retry
    cid = first.confirmation_id  # type: ignore[attr-defined]
    facts = holder_store.confirmation_by_id(store_engine, cid)
    assert facts is not None and facts.masked_email == "f***@example.com"
    token = holder_store.confirmation_token(KEY, cid, facts.salt)
    assert len(token) == 43  # 256 bits
    with statements_of(store_engine) as statements:
        found = holder_store.confirmation_for_token(store_engine, token)
    assert found == facts
    assert len(statements) == 1  # the request and its signup's address: the pages wait
    with Session(store_engine) as session:
        row = session.get(HolderConfirmationRequest, cid)
        assert row is not None and token not in str(row.model_dump())
    assert holder_store.confirmation_for_token(store_engine, token[:-1] + "x") is None
    assert [f.confirmation_id for f in holder_store.pending_for_account(
        store_engine, customer.account_id, NOW
    )] == [cid]  # fmt: skip

    second = ask(store_engine, ticket.signup_id, customer, 2)
    old = holder_store.confirmation_by_id(store_engine, cid)
    assert old is not None and old.refusal(NOW) == ErrorCode.CONFIRMATION_REPLACED
    new = holder_store.confirmation_by_id(store_engine, second.confirmation_id)  # type: ignore[attr-defined]
    assert new is not None and new.refusal(NOW) is None
    assert new.refusal(NOW + timedelta(hours=24)) == ErrorCode.CONFIRMATION_EXPIRED

    # One gateway's holder gets at most so many requests a day, from all signups.
    other = signup_store.open_signup(store_engine, "other@example.com")
    with pytest.raises(RuleViolation) as err:
        ask(store_engine, other.signup_id, customer, 1, cap=2)
    assert err.value.code == ErrorCode.HOLDER_ASK_LIMIT


def asked_request(
    engine: Engine, email: str, *, confirm: bool, channel: str
) -> tuple[Customer, str, RecordHolderDecisionInput]:
    """A signup under ``email`` whose holder was asked: the customer, the signup and an
    answer to the request."""
    customer = applied(engine)
    ticket = signup_store.open_signup(engine, email)
    cid = ask(engine, ticket.signup_id, customer, 1).confirmation_id  # type: ignore[attr-defined]
    answer = RecordHolderDecisionInput(
        signup_id=ticket.signup_id,
        confirmation_id=cid,
        confirm=confirm,
        channel=channel,
        decided_at=NOW,
    )
    return customer, ticket.signup_id, answer


def test_a_decline_is_final_and_frees_the_address(store_engine: Engine) -> None:
    customer, signup_id, decision = asked_request(
        store_engine, "declined@example.com", confirm=False, channel="circle_session"
    )
    cid = decision.confirmation_id
    with statements_of(store_engine) as statements:
        holder_store.record_decision(store_engine, decision)
    # the answer waits for this: one conditional update decides, one closes the signup
    assert [q.split()[0] for q in statements] == ["UPDATE", "UPDATE"]
    holder_store.record_decision(store_engine, decision)  # a retry
    with pytest.raises(RuleViolation) as err:
        holder_store.record_decision(store_engine, decision.model_copy(update={"confirm": True}))
    assert err.value.code == ErrorCode.CONFIRMATION_USED
    with pytest.raises(RuleViolation) as err:  # another signup's request
        holder_store.record_decision(
            store_engine, decision.model_copy(update={"signup_id": "someone-else"})
        )
    assert err.value.code == ErrorCode.CONFIRMATION_UNKNOWN
    facts = holder_store.confirmation_by_id(store_engine, cid)
    assert facts is not None and facts.status == "declined"
    assert signup_store.open_signup(store_engine, "declined@example.com").signup_id != signup_id
    with pytest.raises(RuleViolation):
        signup_store.register_member(store_engine, member_input(signup_id, customer))


def test_two_racing_asks_of_one_number_open_one_request(store_engine: Engine) -> None:
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, "twice@example.com")
    outcomes = race(
        lambda: ask(store_engine, ticket.signup_id, customer, 1),
        lambda: ask(store_engine, ticket.signup_id, customer, 1),
    )
    assert outcomes[0] == outcomes[1]
    assert [f.confirmation_id for f in holder_store.pending_for_account(
        store_engine, customer.account_id, NOW
    )] == [outcomes[0].confirmation_id]  # type: ignore[attr-defined]  # fmt: skip


def test_an_ask_that_loses_the_race_answers_with_the_winners(store_engine: Engine) -> None:
    """The race forced: another attempt of the same ask commits its request between this
    attempt's reads and its writes; this attempt's INSERT collides, its replacement of the
    pending request is rolled back with it, and its second try answers with the winner's
    request, which stays the one pending."""
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, "raced-ask@example.com")
    with other_attempt_first(
        store_engine,
        "UPDATE holder_confirmations",  # this attempt's first write: the replacement
        "holder_confirmations",
        lambda: ask(store_engine, ticket.signup_id, customer, 1),
    ) as race:
        lost = ask(store_engine, ticket.signup_id, customer, 1)
    assert len(race.inserts) == 2, race.inserts  # the winner's, then the loser's
    assert lost == race.won[0]
    pending = holder_store.pending_for_account(store_engine, customer.account_id, NOW)
    assert [f.confirmation_id for f in pending] == [lost.confirmation_id]  # type: ignore[attr-defined]  # fmt: skip


def test_the_own_address_needs_no_request(store_engine: Engine) -> None:
    customer = applied(store_engine)
    ticket = signup_store.open_signup(store_engine, customer.email.upper())
    with statements_of(store_engine) as statements:
        asked = ask(store_engine, ticket.signup_id, customer, 1)
    assert asked == HolderAsked(needed=False)
    assert len(statements) == 1


def test_of_two_racing_answers_one_decides(store_engine: Engine) -> None:
    _, _, answer = asked_request(
        store_engine, "raced@example.com", confirm=True, channel="mail_link"
    )
    cid = answer.confirmation_id
    no = answer.model_copy(update={"confirm": False, "channel": "circle_session"})
    outcomes = race(
        lambda: holder_store.record_decision(store_engine, answer),
        lambda: holder_store.record_decision(store_engine, no),
    )
    assert sorted(map(str, outcomes)) == sorted(["None", str(ErrorCode.CONFIRMATION_USED)])
    facts = holder_store.confirmation_by_id(store_engine, cid)
    assert facts is not None
    assert facts.status == ("confirmed" if outcomes[0] is None else "declined")


def test_wrong_pairs_are_limited_per_gateway_across_signups(store_engine: Engine) -> None:
    customer = applied(store_engine)
    WRONG, LOCKED, MATCHED = (
        GatewayOutcome.WRONG_PAIR,
        GatewayOutcome.GATEWAY_LOCKED,
        GatewayOutcome.MATCHED,
    )
    a = signup_store.open_signup(store_engine, "a@example.com").signup_id
    b = signup_store.open_signup(store_engine, "b@example.com").signup_id
    c = signup_store.open_signup(store_engine, "c@example.com").signup_id
    assert entry(store_engine, a, customer, 0, customer.eligible_pcs) == MATCHED
    for n in range(5):
        assert entry(store_engine, a, customer, n + 1, f"WRONG00{n}") == WRONG
    assert entry(store_engine, a, customer, 5, "WRONG00X") == WRONG  # a retry: once
    for n in range(5):
        assert entry(store_engine, b, customer, n, f"WRONG10{n}") == WRONG
    # Ten wrong pairs in 24 hours: refused, the right pair too (nothing is revealed).
    assert entry(store_engine, c, customer, 0, customer.eligible_pcs) == LOCKED
    assert entry(store_engine, c, customer, 1, "WRONG200") == LOCKED
    assert entry(store_engine, c, customer, 2, customer.eligible_pcs, hours=24) == MATCHED


def test_step3_reads_a_right_pair_in_two_statements(store_engine: Engine) -> None:
    """The throttle (this attempt counted? wrong pairs in 24 hours) and the gateway's
    standing (owner, serial, application, membership): one statement each."""
    customer = applied(store_engine)
    signup = signup_store.open_signup(store_engine, "two@example.com").signup_id
    with statements_of(store_engine) as statements:
        outcome = entry(store_engine, signup, customer, 0, customer.eligible_pcs)
    assert outcome == GatewayOutcome.MATCHED
    assert [s.split()[0] for s in statements] == ["SELECT", "SELECT"], statements
