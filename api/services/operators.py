"""Operators: the stuck list (from ``domain/operators``' one query builder) and actions
(the workflow's ``operator_action`` update), each action and each refusal audited.

The API route and ``cli.py`` both call these functions, so they return the same set and
record the same rows.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.services.starts import temporal_call
from api.services.workflows import answer, update_id
from config import Settings
from domain import search_attributes as sa
from domain.errors import ErrorCode
from domain.operators import (
    ENROLLMENT_TYPE,
    SIGNUP_STAGE_PREFIX,
    SIGNUP_TYPE,
    OperatorAction,
    OperatorOutcome,
    OperatorRequest,
    StuckRule,
    journey_query,
    stuck_rules,
)
from store import audit

WORKFLOW_ID = re.compile(r"^(enrollment|signup)-[0-9a-f]{32}$")


class Operator(Protocol):
    """Who acts: an operator's identity as ``api/deps.py`` authenticates it (their own
    credentials; the role is checked there, and again here)."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...


@dataclass
class Row:
    workflow_id: str
    workflow_type: str
    run_status: str
    stage: str | None
    stage_entered_at: datetime | None
    reminder_count: int | None
    needs_operator: bool | None
    reasons: list[str] = field(default_factory=list)
    next_action: str | None = None


@dataclass(frozen=True)
class Listing:
    queries: list[str]
    rows: list[Row]


def listing_queries(
    settings: Settings,
    now: datetime,
    *,
    stage: str | None = None,
    needs_operator: bool | None = None,
    stuck: bool = False,
) -> list[tuple[str, StuckRule | None]]:
    """The visibility queries a listing runs (the README's saved views are these)."""
    if not stuck:
        return [(journey_query(stage=stage, needs_operator=needs_operator), None)]
    wanted_type = None
    if stage is not None:
        wanted_type = SIGNUP_TYPE if stage.startswith(SIGNUP_STAGE_PREFIX) else ENROLLMENT_TYPE
    queries: list[tuple[str, StuckRule | None]] = []
    for rule in stuck_rules(settings.stuck):
        if wanted_type is not None and rule.workflow_type != wanted_type:
            continue
        if rule.older_than is None:  # the flag rule, narrowed to the stage asked for
            if needs_operator is False:
                continue
            query = journey_query(
                rule.workflow_type, stage=stage, needs_operator=True, running=True
            )
        else:
            if stage is not None and rule.stage != stage:
                continue
            query = rule.query(now)
            if needs_operator is not None:
                query += f" AND {sa.NEEDS_OPERATOR.name} = {'true' if needs_operator else 'false'}"
        queries.append((query, rule))
    return queries


async def list_rows(
    client: Client,
    settings: Settings,
    *,
    stage: str | None = None,
    needs_operator: bool | None = None,
    stuck: bool = False,
    limit: int = 100,
    now: datetime | None = None,
) -> Listing:
    at = now or datetime.now(UTC)
    queries = listing_queries(settings, at, stage=stage, needs_operator=needs_operator, stuck=stuck)
    rows: dict[str, Row] = {}
    for query, rule in queries:
        async for wf in client.list_workflows(query, limit=limit):
            row = rows.get(wf.id)
            if row is None:
                attrs = wf.typed_search_attributes
                row = rows[wf.id] = Row(
                    workflow_id=wf.id,
                    workflow_type=wf.workflow_type,
                    run_status=wf.status.name if wf.status else "UNKNOWN",
                    stage=attrs.get(sa.STAGE),
                    stage_entered_at=attrs.get(sa.STAGE_ENTERED_AT),
                    reminder_count=attrs.get(sa.REMINDER_COUNT),
                    needs_operator=attrs.get(sa.NEEDS_OPERATOR),
                )
            if rule is not None:
                row.reasons.append(rule.reason)
                row.next_action = row.next_action or rule.next_action
            if len(rows) >= limit:
                break
    return Listing(queries=[q for q, _ in queries], rows=list(rows.values())[:limit])


async def list_rows_bounded(client: Client, settings: Settings, **kwargs: Any) -> Listing:
    """``list_rows`` within ``temporal_call_timeout`` (503 ``temporal_unavailable``)."""
    return await temporal_call(settings, list_rows(client, settings, **kwargs))


async def act(
    client: Client,
    engine: Engine,
    settings: Settings,
    operator: Operator,
    workflow_id: str,
    action: OperatorAction,
    reason: str,
    idempotency_key: str | None,
) -> tuple[OperatorOutcome, int]:
    """Run one operator action; every outcome, refusals included, is an audit row.
    Returns the workflow's outcome and the audit row's ID."""

    def audited(outcome: str, before: str | None, after: str | None) -> int:
        return audit.record(
            engine,
            operator=operator.name,
            action=action.value,
            reason=reason,
            workflow_id=workflow_id[:100],
            stage_before=before,
            stage_after=after,
            outcome=outcome,
        )

    async def refuse(code: ErrorCode, before: str | None = None) -> ApiError:
        await asyncio.to_thread(audited, code.value, before, before)
        return ApiError(code)

    if operator.role != "operator":
        raise await refuse(ErrorCode.OPERATOR_ROLE_REQUIRED)
    if not WORKFLOW_ID.match(workflow_id):
        raise await refuse(ErrorCode.JOURNEY_NOT_FOUND)
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await temporal_call(settings, handle.describe())
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        raise await refuse(ErrorCode.JOURNEY_NOT_FOUND) from None
    before = described.typed_search_attributes.get(sa.STAGE)
    request = OperatorRequest(action=action, operator=operator.name, reason=reason)
    key = idempotency_key or uuid.uuid4().hex  # without a key every call is its own
    try:
        outcome = await answer(
            settings,
            handle,
            handle.execute_update(
                "operator_action",
                request,
                id=update_id(f"operator-{action.value}", operator.name, workflow_id, key),
                result_type=OperatorOutcome,
            ),
        )
    except ApiError as err:
        code = ErrorCode(err.code)
        if code == ErrorCode.JOURNEY_CLOSED and workflow_id.startswith("signup-"):
            code = ErrorCode.SIGNUP_CLOSED
        raise await refuse(code, before) from None
    audit_id = await asyncio.to_thread(audited, "done", outcome.before_stage, outcome.after_stage)
    return outcome, audit_id
