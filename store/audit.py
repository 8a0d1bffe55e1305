"""The operators' audit trail (table ``operator_audit``): one row per action or refusal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.tables import OperatorAudit


def record(
    engine: Engine,
    *,
    operator: str,
    action: str,
    reason: str,
    workflow_id: str,
    before_stage: str | None,
    after_stage: str | None,
    outcome: str,
    at: datetime | None = None,
) -> OperatorAudit:
    with Session(engine) as session:
        row = OperatorAudit(
            operator=operator,
            at=at or datetime.now(UTC),
            action=action,
            reason=reason,
            workflow_id=workflow_id,
            before_stage=before_stage,
            after_stage=after_stage,
            outcome=outcome,
        )
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def for_workflow(engine: Engine, workflow_id: str) -> Sequence[OperatorAudit]:
    with Session(engine) as session:
        return session.exec(
            select(OperatorAudit)
            .where(OperatorAudit.workflow_id == workflow_id)
            .order_by(col(OperatorAudit.id))
        ).all()
