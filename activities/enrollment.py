"""Activities on the store: eligibility, the consent ledger, circle applications.

They are synchronous (SQLAlchemy's sync engine) and run in the worker's thread pool. A
domain rule violation becomes a non-retryable ``ApplicationError`` whose type is the stable
error code, so the API can map it without parsing messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.enrollment import (
    CancelApplicationInput,
    EligibilityResult,
    GatewayView,
    RecordApplicationInput,
    RecordConsentInput,
    RecordedApplication,
)
from domain.errors import message_for
from domain.member import CircleCancelledInput
from store import enrollment as enrollment_store
from store import member as member_store

T = TypeVar("T")


def refuse_on_rule(fn: Callable[[], T]) -> T:
    """Run a store operation; a rule violation becomes a non-retryable, typed failure."""
    try:
        return fn()
    except enrollment_store.RuleViolation as exc:
        raise ApplicationError(
            message_for(exc.code), type=exc.code.value, non_retryable=True
        ) from None


class EnrollmentActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def check_eligibility(self, account_id: str) -> EligibilityResult:
        return enrollment_store.check_eligibility(self._engine, account_id)

    @activity.defn
    def record_consent(self, inp: RecordConsentInput) -> None:
        enrollment_store.record_consent(self._engine, inp)

    @activity.defn
    def record_application(self, inp: RecordApplicationInput) -> RecordedApplication:
        return refuse_on_rule(lambda: enrollment_store.record_application(self._engine, inp))

    @activity.defn
    def cancel_application(self, inp: CancelApplicationInput) -> list[GatewayView]:
        return refuse_on_rule(lambda: enrollment_store.cancel_application(self._engine, inp))

    @activity.defn
    def mark_points_member_suspended(self, inp: CircleCancelledInput) -> int | None:
        """The circle application of a gateway was cancelled: its スマイルeポイント member
        (if any) is marked suspended. Returns the member's ID, for the mail."""
        return member_store.mark_circle_cancelled(
            self._engine, inp.account_id, inp.gateway_id, inp.at
        )
