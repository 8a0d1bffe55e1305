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
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from domain.enrollment import (
    CancelApplicationInput,
    CancelledApplication,
    EligibilityResult,
    GatewayView,
    PublishStatusInput,
    RecordApplicationInput,
    RecordConsentInput,
    RecordedApplication,
)
from domain.errors import message_for
from domain.member import CircleCancelledInput
from store import enrollment as enrollment_store
from store import journey_status
from store import member as member_store

T = TypeVar("T")


def refuse_on_rule(fn: Callable[[], T]) -> T:
    """Run a store operation; a rule violation becomes a non-retryable, typed failure.

    A refusal is an expected answer, not a fault: it is logged as one INFO line (the code
    and the activity's IDs, no personal data), and raised as a BENIGN error, for which
    the SDK logs its "Completing activity as failed" traceback at DEBUG instead of
    WARNING (and counts no failure in its metrics). Real failures keep their traceback.
    """
    try:
        return fn()
    except enrollment_store.RuleViolation as exc:
        activity.logger.info("refused by a rule: %s", exc.code.value)
        raise ApplicationError(
            message_for(exc.code),
            type=exc.code.value,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        ) from None


class EnrollmentActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def check_eligibility(self, account_id: str) -> EligibilityResult:
        return enrollment_store.check_eligibility(self._engine, account_id)

    @activity.defn
    def record_consent(self, inp: RecordConsentInput) -> bool | None:
        """The consent ledger's row; whether the carried status row was written or was
        there already (None: none carried; runs recorded before status-with-write
        return None too)."""
        enrollment_store.record_consent(self._engine, inp)
        return self._publish_with(inp.status) if inp.status is not None else None

    @activity.defn
    def record_application(self, inp: RecordApplicationInput) -> RecordedApplication:
        recorded = refuse_on_rule(lambda: enrollment_store.record_application(self._engine, inp))
        recorded.status_written = self._publish_with(inp.status)
        return recorded

    @activity.defn
    def cancel_application(self, inp: CancelApplicationInput) -> list[GatewayView]:
        return refuse_on_rule(lambda: enrollment_store.cancel_application(self._engine, inp))

    @activity.defn
    def cancel_application_carrying_status(
        self, inp: CancelApplicationInput
    ) -> CancelledApplication:
        """``cancel_application`` with the status row its input carries."""
        gateways = self.cancel_application(inp)
        return CancelledApplication(
            gateways=gateways, status_written=self._publish_with(inp.status)
        )

    @activity.defn
    def publish_status(self, inp: PublishStatusInput) -> bool:
        """The journey's status into its store row (a local activity; newer writes win)."""
        return journey_status.publish(self._engine, inp)

    def _publish_with(self, status: PublishStatusInput | None) -> bool:
        """Patch ``status-with-write``: a write that carries the journey's status as it
        will be after it (the workflow's prediction) writes the row too, once the write
        itself succeeded (a refusal writes nothing). Whether the row was written, or was
        there already (a retry finds its own row, which is not newer): a row that cannot
        be written never fails the write, which is recorded already (the workflow's
        writer tries the row again). The write is idempotent by its key and
        the row only moves forward, so a retry of both is safe."""
        if status is None:
            return False
        try:
            journey_status.publish(self._engine, status)
        except Exception as err:  # the row is second to the write: never fail it
            activity.logger.warning("status row not written: %s", type(err).__name__)
            return False
        return True

    @activity.defn
    def mark_points_member_suspended(self, inp: CircleCancelledInput) -> int | None:
        """The circle application of a gateway was cancelled: its スマイルeポイント member
        (if any) is marked suspended. Returns the member's ID, for the mail."""
        return member_store.mark_circle_cancelled(
            self._engine, inp.account_id, inp.gateway_id, inp.at
        )
