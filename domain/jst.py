"""The JST clock: the guide's date-time format and the quiet hours no reminder is sent in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

from pydantic import BaseModel

JST = timezone(timedelta(hours=9), "JST")


def format_jst(moment: datetime) -> str:
    """The guide's date-time format, on the JST clock: ``2022/06/20 19:25``."""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")


def format_duration(span: timedelta) -> str:
    """A configured duration as customers read it: ``24時間``, ``90分``."""
    minutes = int(span.total_seconds()) // 60
    return f"{minutes // 60}時間" if minutes % 60 == 0 else f"{minutes}分"


class QuietHours(BaseModel):
    """The JST hours in which no reminder is sent (journey or signup); one due in them
    waits for their end. ``start == end``: no quiet hours."""

    start: time = time(21, 0)
    end: time = time(9, 0)


def lift_quiet_hours(data: Any, policy_key: str) -> Any:
    """Workflow inputs recorded before ``QuietHours`` existed carry ``quiet_start`` and
    ``quiet_end`` inside their policy: read them as the input's ``quiet_hours``."""
    if isinstance(data, dict) and "quiet_hours" not in data:
        policy = data.get(policy_key)
        if isinstance(policy, dict) and "quiet_start" in policy:
            hours = {"start": policy["quiet_start"], "end": policy["quiet_end"]}
            return {**data, "quiet_hours": hours}
    return data


def is_quiet(moment: datetime, policy: QuietHours) -> bool:
    """True when ``moment`` falls in the quiet hours, read on the JST clock."""
    local = moment.astimezone(JST).time()
    start, end = policy.start, policy.end
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
        hour=policy.end.hour, minute=policy.end.minute, second=0, microsecond=0
    )
    if end_today <= local:
        end_today += timedelta(days=1)
    return end_today.astimezone(moment.tzinfo or UTC)
