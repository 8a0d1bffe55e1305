"""The enrollment (the customer's circle journey): stages, eligibility, reminders, and the
contracts of ``EnrollmentWorkflow`` and its activities.

All pure: the workflow calls these with ``workflow.now()`` and its own state. One model per
message; new fields get defaults so that histories recorded before a field existed still
decode. No model here carries personal data: the mail activity looks the recipient up in
the store by account ID.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from domain.jst import QuietHours, defer_out_of_quiet_hours, format_jst, lift_quiet_hours
from domain.terms import TermsDocument
from domain.values import GatewayId


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
    CANCELLED = "cancelled"  # an operator ended it (before any active application)

    @property
    def is_final(self) -> bool:
        return self in (Stage.INELIGIBLE, Stage.DECLINED, Stage.WITHDRAWN, Stage.CANCELLED)

    @property
    def awaited(self) -> AwaitedStep | None:
        """The customer's step this stage waits for (a stalled customer is reminded of
        it), or None."""
        return _AWAITED.get(self)


class AwaitedStep(StrEnum):
    """What a reminder asks the customer to do; the reminder templates branch on it."""

    CONSENT = "consent"
    APPLICATION = "application"
    POINTS_SIGNUP = "points_signup"


_AWAITED = {
    Stage.AWAITING_CONSENT: AwaitedStep.CONSENT,
    Stage.AWAITING_APPLICATION: AwaitedStep.APPLICATION,
    Stage.AWAITING_POINTS_SIGNUP: AwaitedStep.POINTS_SIGNUP,
}


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
    GATEWAY_REMOVED = "gateway_removed"  # removed or exchanged (monitoring system)


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
    A reminder that falls in the quiet hours (``QuietHours``, JST) is deferred to their end.
    The defaults here are the only ones (``config.Settings.reminder`` reads overrides).
    """

    delays: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=3), timedelta(days=7), timedelta(days=14)]
    )

    @model_validator(mode="after")
    def _increasing(self) -> ReminderPolicy:
        if any(b <= a for a, b in zip(self.delays, self.delays[1:], strict=False)):
            raise ValueError("reminder delays must be strictly increasing")
        if any(d <= timedelta(0) for d in self.delays):
            raise ValueError("reminder delays must be positive")
        return self


def next_reminder_at(
    stage_entered_at: datetime, reminders_sent: int, policy: ReminderPolicy, quiet: QuietHours
) -> datetime | None:
    """When the next reminder of this stage is due, or None once the cap is reached."""
    if reminders_sent >= len(policy.delays):
        return None
    return defer_out_of_quiet_hours(stage_entered_at + policy.delays[reminders_sent], quiet)


# ---- contracts of EnrollmentWorkflow and its activities ----


class ApplicationState(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    CANCELLED = "cancelled"


class GatewayView(BaseModel):
    gateway_id: str
    pcs_serial: str
    model: str
    eligible: bool
    reasons: list[GatewayReason] = Field(default_factory=list)
    application: ApplicationState = ApplicationState.NONE
    applied_at: datetime | None = None
    cancelled_at: datetime | None = None


class CarriedState(BaseModel):
    """What a journey carries into its next run when it continues as new: only what the
    workflow cannot ask the store for again without changing its meaning (the stage and
    its clock, the reminders already sent, the gateways as last seen, the points
    membership, the terms the customer is asked about)."""

    stage: Stage
    stage_entered_at: datetime
    reminders_sent: int = 0
    dormant: bool = False
    mail_trouble: bool = False
    gateways: list[GatewayView] = Field(default_factory=list)
    points_gateway: str | None = None
    run_scoped_mail_keys: bool = True
    gateway_trouble: bool = False
    gateway_events: list[str] = Field(default_factory=list)
    # Where an operator restarted the reminder schedule (None: at the stage's entry), and
    # whether they had seen the needs-operator flag.
    schedule_from: datetime | None = None
    flag_cleared: bool = False


class EnrollmentInput(BaseModel):
    account_id: str
    circle_terms: TermsDocument
    points_signup_url: str
    reminders: ReminderPolicy
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    # Continue as new once the history holds this many events (None: only when the
    # server suggests it). Small values are for tests and drills.
    continue_as_new_after_events: int | None = Field(default=None, ge=10)
    # Set only by the journey itself when it continues as new.
    carried: CarriedState | None = None
    # The task queue of its mail activities (Settings.mail_task_queue); None: the
    # workflow's own.
    mail_task_queue: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _recorded_before_quiet_hours(cls, data: Any) -> Any:
        return lift_quiet_hours(data, "reminders")


class EligibilityResult(BaseModel):
    """What the registry knows about an account, and the verdict."""

    eligible: bool
    reason: IneligibleReason | None = None
    gateways: list[GatewayView] = Field(default_factory=list)


class ConsentRequest(BaseModel):
    """Update ``give_consent``: the customer pressed 同意する on this terms version.

    ``current_terms`` is the document the API serves now (GET /v1/terms): a journey that
    started under an older version moves to it, so a terms revision never strands a
    journey waiting for consent. Absent in requests recorded before it existed.
    """

    terms_version: str
    channel: str = "web"
    current_terms: TermsDocument | None = None


class ConsentResult(BaseModel):
    stage: Stage
    consented_at: datetime


class DeclineResult(BaseModel):
    stage: Stage
    declined_at: datetime


class EnrollmentStatus(BaseModel):
    """Query ``get_status``: everything the front end and operators need to see."""

    stage: Stage
    stage_entered_at: datetime
    ineligible_reason: IneligibleReason | None = None
    gateways: list[GatewayView] = Field(default_factory=list)
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None
    dormant: bool = False
    circle_terms_version: str = ""
    points_member_gateway_id: str | None = None


class StartSettled(BaseModel):
    """Update ``settle_start`` (the start of ``POST /v1/journey``, by update-with-start):
    the status once the eligibility check is done and the store's row shows it. ``fresh``:
    the run was still checking when asked, so its stage (even ineligible) is the answer;
    otherwise a final stage means the run is only closing (sending its last mails)."""

    status: EnrollmentStatus
    fresh: bool


class PublishStatusInput(BaseModel):
    """Activity ``publish_status``: the journey's status for the store's row (read by
    ``GET /v1/journey``). ``(published_at, seq)`` orders the writes of every run."""

    account_id: str
    run_id: str  # the run that publishes (a start waits for its own run's first status)
    seq: int
    published_at: datetime
    status: EnrollmentStatus


class RecordConsentInput(BaseModel):
    key: str
    account_id: str
    terms: TermsDocument
    decision: Literal["agreed", "declined"]
    decided_at: datetime
    channel: str
    # Patch ``status-with-write``: the journey's status as it will be once this is
    # recorded, written to its store row by the same local activity (one write, not two,
    # before the update answers). None: the workflow writes the row itself.
    status: PublishStatusInput | None = None


class ApplyRequest(BaseModel):
    """Update ``apply_gateway``: 申込確定 for one gateway."""

    gateway_id: GatewayId


class ApplicationReceipt(BaseModel):
    """What the completion screen (申込完了) shows."""

    gateway_id: str
    pcs_serial: str
    applied_at: datetime
    points_signup_url: str

    @property
    def applied_at_jst(self) -> str:
        return format_jst(self.applied_at)


class RecordApplicationInput(BaseModel):
    key: str
    account_id: str
    gateway_id: str
    applied_at: datetime
    status: PublishStatusInput | None = None  # as in RecordConsentInput


class RecordedApplication(BaseModel):
    gateway_id: str
    pcs_serial: str
    applied_at: datetime
    gateways: list[GatewayView]
    # An active スマイルeポイント member on one of the account's gateways (a household
    # re-joining after 解約): the journey goes straight to enrolled.
    points_member_gateway_id: str | None = None
    # Whether the status row the input carried was written (patch status-with-write).
    status_written: bool = False


class CancelRequest(BaseModel):
    """Update ``cancel_application``: 解約 of one gateway's application."""

    gateway_id: GatewayId


class CancelReceipt(BaseModel):
    gateway_id: str
    cancelled_at: datetime
    stage: Stage


class CancelledApplication(BaseModel):
    """Activity ``cancel_application_carrying_status`` (patch status-with-write)."""

    gateways: list[GatewayView]
    status_written: bool  # the carried status row was written


class CancelApplicationInput(BaseModel):
    key: str
    account_id: str
    gateway_id: str
    cancelled_at: datetime
    status: PublishStatusInput | None = None  # as in RecordConsentInput


class PointsRegistered(BaseModel):
    """Signal ``points_registered`` from the points signup: the membership exists."""

    gateway_id: str
    registered_at: datetime


class EnrollmentResult(BaseModel):
    stage: Stage
    ineligible_reason: IneligibleReason | None = None


# ---- gateway changes from the monitoring system (issue 7) ----


class GatewayEventKind(StrEnum):
    ADDED = "added"
    EXCHANGED = "exchanged"  # gateway_id → new_gateway_id (故障交換 or replacement)
    REMOVED = "removed"  # ゲートウェイの廃棄
    UNITS_CHANGED = "units_changed"  # PV / battery unit in use or not


class GatewayChanged(BaseModel):
    """Signal ``gateway_changed``: the store has recorded a monitoring-system event about
    one of the account's gateways; the journey re-checks eligibility. Idempotent by
    ``event_id`` (a signal, because it is a machine event, not a customer's repeatable
    request)."""

    event_id: str
    kind: GatewayEventKind
    gateway_id: str
    new_gateway_id: str | None = None
