"""What operators find, read and do: stuck rules, the one query builder, operator actions.

Both workflow types publish the same four search attributes (``domain/search_attributes``):
``EcoStage`` (a journey's ``Stage`` value, or ``signup_`` + the signup's status),
``EcoStageEnteredAt``, ``EcoReminderCount`` (journey reminders; signup links and reminders
mailed) and ``EcoNeedsOperator``. "Stuck" is defined per stage by ``StuckPolicy`` (settings
``ECOKATSU_STUCK_*``); ``stuck_rules`` turns it into visibility queries, and the API
(``GET /v1/operator/journeys``), the CLI (``cli.py journeys``) and the README's saved views
all come from ``journey_query`` / ``StuckRule.query`` here: one place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from domain import search_attributes as sa
from domain.enrollment import Stage
from domain.signup import SignupStatus

ENROLLMENT_TYPE = "EnrollmentWorkflow"
SIGNUP_TYPE = "PointSignupWorkflow"
# The visibility status of a run that continued as new (its chain goes on in the next run).
CONTINUED_AS_NEW = "ContinuedAsNew"
SIGNUP_STAGE_PREFIX = "signup_"


def signup_stage(status: SignupStatus) -> str:
    """A signup's ``EcoStage``: prefixed, so no value is shared with a journey's stages."""
    return f"{SIGNUP_STAGE_PREFIX}{status.value}"


# Every value EcoStage can take, for the API's and the CLI's ``stage`` filter.
STAGES: tuple[str, ...] = tuple(s.value for s in Stage) + tuple(
    signup_stage(s) for s in SignupStatus
)


class OperatorAction(StrEnum):
    """Operator actions (updates ``operator_action`` on both workflow types)."""

    RESEND = "resend"  # journey: invitation or reminder again; signup: a new link
    EXTEND = "extend"  # journey: reminder schedule from now; signup: link valid again
    REVIVE = "revive"  # journey, dormant: reminder now and the schedule from now
    RECHECK_ELIGIBILITY = "recheck_eligibility"  # journey: the gateways checked again
    CANCEL = "cancel"  # journey or signup ends; the customer is mailed
    CLEAR_FLAG = "clear_flag"  # EcoNeedsOperator off, with a note


SIGNUP_ACTIONS = frozenset(
    {OperatorAction.RESEND, OperatorAction.EXTEND, OperatorAction.CANCEL, OperatorAction.CLEAR_FLAG}
)


class OperatorRequest(BaseModel):
    """An operator action as the workflow receives it. ``reason`` is the operator's own
    words: it travels in the (encrypted) update payload and the audit table, never into
    search attributes, details or mails."""

    action: OperatorAction
    operator: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


class OperatorOutcome(BaseModel):
    action: OperatorAction
    before_stage: str
    after_stage: str
    at: datetime
    detail: str = ""  # codes only (what was mailed, eligibility), no personal data


class StuckPolicy(BaseModel):
    """When a journey or signup counts as stuck (beside ``EcoNeedsOperator``, which always
    does: a dormant journey, an undeliverable mail, a locked signup). Defaults live here
    only; ``ECOKATSU_STUCK_<FIELD>`` overrides one."""

    awaiting_consent_after: timedelta = timedelta(days=14)
    awaiting_application_after: timedelta = timedelta(days=14)
    awaiting_points_signup_after: timedelta = timedelta(days=30)
    signup_link_expired_after: timedelta = timedelta(days=2)


class StuckRule(BaseModel):
    name: str
    workflow_type: str
    stage: str | None  # None: any stage (the needs-operator rule)
    older_than: timedelta | None
    reason: str
    next_action: str

    def query(self, now: datetime) -> str:
        """The visibility query (the Temporal UI's filter) for this rule at ``now``."""
        return journey_query(
            self.workflow_type,
            stage=self.stage,
            needs_operator=True if self.older_than is None else None,
            entered_before=now - self.older_than if self.older_than is not None else None,
            running=True,
        )

    def matches(
        self, now: datetime, stage: str | None, entered_at: datetime | None, flagged: bool | None
    ) -> bool:
        """The same rule on one workflow's attributes: what ``query(now)`` selects."""
        if self.older_than is None:
            return bool(flagged)
        return stage == self.stage and entered_at is not None and entered_at < now - self.older_than


def stuck_rules(policy: StuckPolicy) -> list[StuckRule]:
    """Every stuck rule, the flag first (it outranks age: an operator must look)."""
    stages = [
        (Stage.AWAITING_CONSENT.value, policy.awaiting_consent_after, "resend (invitation)"),
        (Stage.AWAITING_APPLICATION.value, policy.awaiting_application_after, "resend (reminder)"),
        (
            Stage.AWAITING_POINTS_SIGNUP.value,
            policy.awaiting_points_signup_after,
            "resend (reminder)",
        ),
    ]
    rules = [
        StuckRule(
            name=f"needs_operator_{kind}",
            workflow_type=wf_type,
            stage=None,
            older_than=None,
            reason="needs_operator",
            next_action=(
                "read the details; resend or extend, then clear_flag"
                if wf_type == ENROLLMENT_TYPE
                else "read the details; resend (a new link) or cancel, then clear_flag"
            ),
        )
        for kind, wf_type in (("journey", ENROLLMENT_TYPE), ("signup", SIGNUP_TYPE))
    ]
    rules += [
        StuckRule(
            name=f"{stage}_over_{_days(after)}",
            workflow_type=ENROLLMENT_TYPE,
            stage=stage,
            older_than=after,
            reason=f"{stage} for over {_days(after)}",
            next_action=action,
        )
        for stage, after, action in stages
    ]
    expired = signup_stage(SignupStatus.LINK_EXPIRED)
    rules.append(
        StuckRule(
            name=f"{expired}_over_{_days(policy.signup_link_expired_after)}",
            workflow_type=SIGNUP_TYPE,
            stage=expired,
            older_than=policy.signup_link_expired_after,
            reason=f"link expired over {_days(policy.signup_link_expired_after)} ago",
            next_action="resend (a new link) or extend (the link valid again)",
        )
    )
    return rules


def journey_query(
    workflow_type: str | None = None,
    *,
    stage: str | None = None,
    needs_operator: bool | None = None,
    entered_before: datetime | None = None,
    running: bool = False,
) -> str:
    """The one visibility query builder (values are enums and datetimes: nothing a caller
    types reaches the query unchecked)."""
    clauses: list[str] = []
    if workflow_type is not None:
        clauses.append(f"WorkflowType = '{workflow_type}'")
    elif stage is None:
        clauses.append(f"WorkflowType IN ('{ENROLLMENT_TYPE}', '{SIGNUP_TYPE}')")
    if running:
        clauses.append("ExecutionStatus = 'Running'")
    else:
        # A run that continued as new is not where the workflow is: its next run is.
        clauses.append(f"ExecutionStatus != '{CONTINUED_AS_NEW}'")
    if stage is not None:
        if stage not in STAGES:
            raise ValueError("unknown stage")
        clauses.append(f"{sa.STAGE.name} = '{stage}'")
    if needs_operator is not None:
        clauses.append(f"{sa.NEEDS_OPERATOR.name} = {'true' if needs_operator else 'false'}")
    if entered_before is not None:
        at = entered_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f"{sa.STAGE_ENTERED_AT.name} < '{at}'")
    return " AND ".join(clauses)


def _days(delta: timedelta) -> str:
    if delta % timedelta(days=1) == timedelta(0):
        return f"{delta.days}d"
    return f"{int(delta.total_seconds())}s"
