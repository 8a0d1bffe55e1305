"""The operators' audit (table ``operator_audit``): every operator request, granted or
refused, one row each.

``record`` is what a route calls after an operator action (outcome ``ok``, the stages
before and after) and what ``api/deps.py`` calls for every refusal (outcome = the error
code). Reasons are the operator's own words; no customer data goes into a row (workflow IDs
are opaque).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.tables import OperatorAudit

OK = "ok"


@dataclass(frozen=True)
class AuditEntry:
    operator: str
    at: datetime
    action: str
    reason: str
    workflow_id: str | None
    stage_before: str | None
    stage_after: str | None
    outcome: str


def record(
    engine: Engine,
    *,
    operator: str,
    action: str,
    outcome: str,
    reason: str = "",
    workflow_id: str | None = None,
    stage_before: str | None = None,
    stage_after: str | None = None,
    at: datetime | None = None,
) -> int:
    """Write one row; its ID (an operator's answer can name the audit row)."""
    with Session(engine) as session:
        row = OperatorAudit(
            operator=operator[:64],
            at=at or datetime.now(UTC),
            action=action[:64],
            reason=reason[:500],
            workflow_id=workflow_id,
            stage_before=stage_before,
            stage_after=stage_after,
            outcome=outcome[:40],
        )
        session.add(row)
        session.commit()
        return row.id or 0


def for_workflow(engine: Engine, workflow_id: str) -> builtins.list[AuditEntry]:
    """Every row about one workflow, oldest first (what was done to it, in order)."""
    return builtins.list(reversed(list(engine, workflow_id=workflow_id, limit=10_000)))


def list(  # the module's verb: audit.record(...), audit.list(...)
    engine: Engine,
    *,
    operator: str | None = None,
    workflow_id: str | None = None,
    refused_only: bool = False,
    limit: int = 100,
) -> builtins.list[AuditEntry]:
    """Newest first."""
    query = select(OperatorAudit)
    if operator is not None:
        query = query.where(OperatorAudit.operator == operator)
    if workflow_id is not None:
        query = query.where(OperatorAudit.workflow_id == workflow_id)
    if refused_only:
        query = query.where(OperatorAudit.outcome != OK)
    query = query.order_by(col(OperatorAudit.at).desc(), col(OperatorAudit.id).desc()).limit(limit)
    with Session(engine) as session:
        return [
            AuditEntry(
                operator=row.operator,
                at=row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
                action=row.action,
                reason=row.reason,
                workflow_id=row.workflow_id,
                stage_before=row.stage_before,
                stage_after=row.stage_after,
                outcome=row.outcome,
            )
            for row in session.exec(query).all()
        ]
