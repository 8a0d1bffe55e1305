"""The circle journey: stages, eligibility reasons, and the reminder schedule.

All pure: the workflow calls these with ``workflow.now()`` and its own state.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field, model_validator

JST = timezone(timedelta(hours=9), "JST")
UTC = UTC


class Stage(StrEnum):
    """Where a customer's journey stands (the ``EcoStage`` search attribute)."""

    CHECKING = "checking"
    AWAITING_CONSENT = "awaiting_consent"
    AWAITING_APPLICATION = "awaiting_application"
    AWAITING_POINTS_SIGNUP = "awaiting_points_signup"
    ENROLLED = "enrolled"
    INELIGIBLE = "ineligible"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"

    @property
    def is_final(self) -> bool:
        return self in (Stage.INELIGIBLE, Stage.DECLINED, Stage.WITHDRAWN)

    @property
    def awaits_customer(self) -> bool:
        """Stages in which a stalled customer is reminded."""
        return self in (
            Stage.AWAITING_CONSENT,
            Stage.AWAITING_APPLICATION,
            Stage.AWAITING_POINTS_SIGNUP,
        )


class IneligibleReason(StrEnum):
    """Why a journey ended before the invitation (readable by operators)."""

    ACCOUNT_NOT_FOUND = "account_not_found"
    CORPORATE_ACCOUNT = "corporate_account"
    NO_ELIGIBLE_GATEWAY = "no_eligible_gateway"


class GatewayReason(StrEnum):
    """Why one gateway cannot take part in the circle."""

    MODEL_NOT_SUPPORTED = "model_not_supported"
    PV_UNIT_NOT_IN_USE = "pv_unit_not_in_use"
    BATTERY_UNIT_NOT_IN_USE = "battery_unit_not_in_use"


class GatewayModel(StrEnum):
    """Model families. KPBP-A (gateway KP-GWBP-A) and Smart PV Multi are eligible."""

    KPBP_A = "KPBP-A"
    SMART_PV_MULTI = "SMART_PV_MULTI"
    OTHER = "OTHER"


ELIGIBLE_MODELS = frozenset({GatewayModel.KPBP_A, GatewayModel.SMART_PV_MULTI})


def gateway_ineligibility(
    model: str, pv_unit_in_use: bool, battery_unit_in_use: bool
) -> list[GatewayReason]:
    """Every reason a gateway is not eligible (empty: eligible)."""
    reasons: list[GatewayReason] = []
    if model not in ELIGIBLE_MODELS:
        reasons.append(GatewayReason.MODEL_NOT_SUPPORTED)
    if not pv_unit_in_use:
        reasons.append(GatewayReason.PV_UNIT_NOT_IN_USE)
    if not battery_unit_in_use:
        reasons.append(GatewayReason.BATTERY_UNIT_NOT_IN_USE)
    return reasons


class ReminderPolicy(BaseModel):
    """When stalled customers are reminded. Arrives in the workflow input (deterministic).

    ``delays`` are counted from the moment the stage was entered; their number is the cap.
    A reminder that falls in the quiet hours (JST) is deferred to the end of them.
    """

    delays: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=3), timedelta(days=7), timedelta(days=14)]
    )
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)

    @model_validator(mode="after")
    def _increasing(self) -> ReminderPolicy:
        if any(b <= a for a, b in zip(self.delays, self.delays[1:], strict=False)):
            raise ValueError("reminder delays must be strictly increasing")
        if any(d <= timedelta(0) for d in self.delays):
            raise ValueError("reminder delays must be positive")
        return self


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


def next_reminder_at(
    stage_entered_at: datetime, reminders_sent: int, policy: ReminderPolicy
) -> datetime | None:
    """When the next reminder of this stage is due, or None once the cap is reached."""
    if reminders_sent >= len(policy.delays):
        return None
    return defer_out_of_quiet_hours(stage_entered_at + policy.delays[reminders_sent], policy)
