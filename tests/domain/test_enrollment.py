"""The reminder schedule and eligibility, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain import search_attributes
from domain.enrollment import GatewayReason, ReminderPolicy, gateway_ineligibility, next_reminder_at
from domain.jst import JST, QuietHours, defer_out_of_quiet_hours, is_quiet

POLICY = ReminderPolicy(delays=[timedelta(days=1), timedelta(days=3)])
QUIET = QuietHours()  # 21:00-09:00 JST


def jst(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST)


def test_reminders_follow_the_delays_then_stop() -> None:
    entered = jst(2026, 11, 27, 12, 0)
    assert next_reminder_at(entered, 0, POLICY, QUIET) == jst(2026, 11, 28, 12, 0)
    assert next_reminder_at(entered, 1, POLICY, QUIET) == jst(2026, 11, 30, 12, 0)
    assert next_reminder_at(entered, 2, POLICY, QUIET) is None


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (jst(2026, 11, 28, 20, 59), jst(2026, 11, 28, 20, 59)),  # still evening
        (jst(2026, 11, 28, 21, 0), jst(2026, 11, 29, 9, 0)),  # night: next morning
        (jst(2026, 11, 29, 3, 30), jst(2026, 11, 29, 9, 0)),  # small hours: this morning
        (jst(2026, 11, 29, 9, 0), jst(2026, 11, 29, 9, 0)),
    ],
)
def test_night_reminders_wait_for_morning(due: datetime, expected: datetime) -> None:
    assert defer_out_of_quiet_hours(due, QUIET) == expected


def test_quiet_hours_are_read_on_the_jst_clock() -> None:
    # 13:00 UTC is 22:00 JST: quiet, though it is daytime in UTC.
    assert is_quiet(datetime(2026, 11, 27, 13, 0, tzinfo=UTC), QUIET)
    deferred = defer_out_of_quiet_hours(datetime(2026, 11, 27, 13, 0, tzinfo=UTC), QUIET)
    assert deferred == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 09:00 JST
    assert deferred.tzinfo == UTC


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)))
def test_no_reminder_is_ever_due_at_night(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    deferred = defer_out_of_quiet_hours(moment, QUIET)
    assert not is_quiet(deferred, QUIET)
    assert timedelta(0) <= deferred - moment <= timedelta(hours=12)


def test_policy_rejects_unordered_delays() -> None:
    with pytest.raises(ValidationError):
        ReminderPolicy(delays=[timedelta(days=3), timedelta(days=1)])
    with pytest.raises(ValidationError):
        ReminderPolicy(delays=[timedelta(0)])
    assert not is_quiet(jst(2026, 1, 1, 23), QuietHours(start=time(0), end=time(0)))


def test_gateway_eligibility_reasons() -> None:
    assert gateway_ineligibility("KPBP-A", True, True) == []
    assert gateway_ineligibility("SMART_PV_MULTI", True, True) == []
    assert gateway_ineligibility("OTHER", False, False) == [
        GatewayReason.MODEL_NOT_SUPPORTED,
        GatewayReason.PV_UNIT_NOT_IN_USE,
        GatewayReason.BATTERY_UNIT_NOT_IN_USE,
    ]


def test_search_attributes_fit_sql_visibility_limits() -> None:
    # SQL visibility: at most 10 Keyword attributes and 3 of each other type.
    from collections import Counter

    counts = Counter(key.indexed_value_type for key in search_attributes.ALL)
    assert all(n <= (10 if t.name == "KEYWORD" else 3) for t, n in counts.items())
