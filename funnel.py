"""The enrollment funnel from Temporal's visibility counts (``cli.py funnel``).

Every journey publishes its stage (``EcoStage``) and when it entered it
(``EcoStageEnteredAt``), so the funnel is a handful of ``count_workflows`` queries, no
store access and no personal data. A stage's count is the journeys in it now: running ones
for the open stages (``enrolled`` included: an enrolled journey still runs, for 解約) and
every closed run for the final ones (``ineligible``, ``declined``, ``withdrawn``); a
household whose ended journey was started anew counts once in each run's stage.
"Converted" = reached ``enrolled`` within the window (by ``EcoStageEnteredAt``).
A journey continues as new (an enrolled one at least once): only the last run of a chain
counts, never the runs that continued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client

from domain import search_attributes as sa
from domain.enrollment import Stage
from domain.operators import CONTINUED_AS_NEW

WINDOWS = (timedelta(days=7), timedelta(days=30))


@dataclass(frozen=True)
class Funnel:
    at_stage: dict[Stage, int]
    converted: dict[timedelta, int]  # window → journeys that reached enrolled within it


def _scope(task_queue: str | None) -> str:
    query = f"WorkflowType = 'EnrollmentWorkflow' AND ExecutionStatus != '{CONTINUED_AS_NEW}'"
    return query + (f" AND TaskQueue = '{_quoted(task_queue)}'" if task_queue else "")


def _quoted(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError("a task queue name with quotes cannot be queried")
    return text


def stage_query(stage: Stage, task_queue: str | None = None) -> str:
    running = "" if stage.is_final else " AND ExecutionStatus = 'Running'"
    return f"{_scope(task_queue)} AND {sa.STAGE.name} = '{stage.value}'{running}"


def converted_query(since: datetime, task_queue: str | None = None) -> str:
    return (
        f"{_scope(task_queue)} AND {sa.STAGE.name} = '{Stage.ENROLLED.value}'"
        f" AND {sa.STAGE_ENTERED_AT.name} >= '{since.isoformat()}'"
    )


async def funnel(client: Client, now: datetime, task_queue: str | None = None) -> Funnel:
    at_stage = {
        stage: (await client.count_workflows(stage_query(stage, task_queue))).count
        for stage in Stage
    }
    converted = {
        window: (await client.count_workflows(converted_query(now - window, task_queue))).count
        for window in WINDOWS
    }
    return Funnel(at_stage=at_stage, converted=converted)


def render(result: Funnel) -> str:
    lines = [f"{'stage':<24} journeys"]
    lines += [f"{stage.value:<24} {count:>8}" for stage, count in result.at_stage.items()]
    lines += [
        f"converted (reached enrolled) in the last {window.days} days: {count}"
        for window, count in result.converted.items()
    ]
    return "\n".join(lines)
