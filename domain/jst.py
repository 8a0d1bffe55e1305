"""The JST clock: the guide's date-time format and the quiet hours no reminder is sent in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from typing import Protocol

JST = timezone(timedelta(hours=9), "JST")


def format_jst(moment: datetime) -> str:
    """The guide's date-time format, on the JST clock: ``2022/06/20 19:25``."""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")


class QuietHours(Protocol):
    """Anything with JST quiet hours: the reminder policies of both workflows."""

    @property
    def quiet_start(self) -> time: ...

    @property
    def quiet_end(self) -> time: ...


def is_quiet(moment: datetime, policy: QuietHours) -> bool:
    """True when ``moment`` falls in the quiet hours, read on the JST clock."""
    local = moment.astimezone(JST).time()
    start, end = policy.quiet_start, policy.quiet_end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def defer_out_of_quiet_hours(moment: datetime, policy: QuietHours) -> datetime:
    """The first instant at or after ``moment`` that is outside the quiet hours."""
    if not is_quiet(moment, policy):
        return moment
    local = moment.astimezone(JST)
    end_today = local.replace(
        hour=policy.quiet_end.hour, minute=policy.quiet_end.minute, second=0, microsecond=0
    )
    if end_today <= local:
        end_today += timedelta(days=1)
    return end_today.astimezone(moment.tzinfo or UTC)
