"""The bare workflow's worker (``python -m bench.bare``) and its measurements.

The worker runs as a process of its own, like the product's, with the product's payload
converter (pydantic, AES-GCM) and activity pool (16 threads), on a task queue of its own.
The bench measures, on the same dev server as the product:

- one step at c=1 (an update on a running journey) for each shape, and the start
  (update-with-start: the workflow starts and its first update answers, one round trip)
  and the status query;
- whole journeys at c (start, consent, apply as updates of the shape; status as a query).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from bench.bare_workflow import BareAnswer, BareInput, BareJourney, BareStep
from bench.procs import ProcStats, python_argv
from bench.stack import CpuMeter, Stack, wait_polling
from bench.stats import Steps, run_pool, timed
from codec import encrypted_converter

SHAPES = ("activity", "local", "now")
DESCRIBED = {
    "activity": "awaits an activity",
    "local": "awaits a local activity",
    "now": "answers at once",
}
KEY_ID = "bench-1"
CODEC_KEY_ENV = "BENCH_CODEC_KEY"


def converter(key: bytes) -> Any:
    return encrypted_converter({KEY_ID: key}, KEY_ID)


class BareStore:
    """One tiny SQLite write per activity (a connection per activity thread)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @activity.defn(name="bare_write")
    def write(self, key: str) -> None:
        conn = self._conn()
        conn.execute("INSERT OR IGNORE INTO steps (key) VALUES (?)", (key,))
        conn.commit()


async def serve(address: str, task_queue: str, db: Path, key: bytes) -> None:
    client = await Client.connect(address, data_converter=converter(key))
    store = BareStore(db)
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BareJourney],
            activities=[store.write],
            activity_executor=executor,
        )
        print(f"polling task queue {task_queue}", flush=True)
        await worker.run()


def _update(shape: str) -> Any:
    return {
        "activity": BareJourney.step_activity,
        "local": BareJourney.step_local,
        "now": BareJourney.step_now,
    }[shape]


async def start(
    client: Client, task_queue: str, shape: str, workflow_id: str, steps: Steps
) -> WorkflowHandle[BareJourney, int]:
    """Start a journey whose first update (of the shape) answers in the same round trip."""
    operation = WithStartWorkflowOperation(
        BareJourney.run,
        BareInput(journey=workflow_id),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    await timed(
        steps,
        "start",
        client.execute_update_with_start_workflow(
            _update(shape), BareStep(what="start"), start_workflow_operation=operation, id="start"
        ),
    )
    return await operation.workflow_handle()


async def one_step(
    client: Client, task_queue: str, shape: str, calls: int, prefix: str, per_journey: int = 20
) -> Steps:
    """``calls`` updates of the shape one after the other, ``per_journey`` on each journey
    (steps "update", "status", and "start" once per journey)."""
    steps = Steps()
    handle: WorkflowHandle[BareJourney, int] | None = None
    for i in range(calls):
        if handle is None or i % per_journey == 0:
            handle = await start(client, task_queue, shape, f"{prefix}-{shape}-{i}", steps)
        answer: BareAnswer = await timed(
            steps,
            "update",
            handle.execute_update(_update(shape), BareStep(what=f"s{i}"), id=f"s{i}"),
        )
        if answer.steps < 2:
            raise RuntimeError(f"bare update answered {answer}")
        await timed(steps, "status", handle.query(BareJourney.status))
    return steps


@dataclass
class JourneyRun:
    journeys: int
    concurrency: int
    seconds: float
    steps: Steps

    @property
    def per_second(self) -> float:
        return self.journeys / self.seconds


async def journeys(
    client: Client, task_queue: str, shape: str, n: int, concurrency: int, prefix: str
) -> JourneyRun:
    """``n`` journeys (start, consent, apply: updates of the shape; status: a query),
    ``concurrency`` at once."""
    steps = Steps()

    async def journey(i: int) -> None:
        handle = await start(
            client, task_queue, shape, f"{prefix}-{shape}-c{concurrency}-{i}", steps
        )
        for what in ("consent", "apply"):
            await timed(
                steps, what, handle.execute_update(_update(shape), BareStep(what=what), id=what)
            )
        answer = await timed(steps, "status", handle.query(BareJourney.status))
        if answer.steps != 3:
            raise RuntimeError(f"bare status answered {answer}")

    seconds = await run_pool(concurrency, list(range(n)), journey)
    return JourneyRun(n, concurrency, seconds, steps)


@dataclass
class BareSizes:
    warmup: int = 10
    calls: int = 200  # one step at c=1, per shape
    journeys: int = 200  # whole journeys at `concurrency`, per shape
    concurrency: int = 20
    ceiling: tuple[int, ...] = (50, 100)  # the local-activity shape at these too


@dataclass
class BareFigures:
    one_step: dict[str, Steps] = field(default_factory=dict)  # shape → step, start, status
    journeys: dict[str, JourneyRun] = field(default_factory=dict)  # shape → run at c
    ceiling: list[JourneyRun] = field(default_factory=list)  # local shape, rising c
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase → process → cores
    worker_memory: ProcStats | None = None


class BareBench:
    """The bare worker on the stack's dev server, measured in phases: the one-step
    shapes in blocks (``one_step_block``, alternating with the product's steps at c=1,
    so both meet the machine in the same state), then whole journeys at c and the
    ceiling (``concurrent``)."""

    def __init__(self, stack: Stack, sizes: BareSizes, say: Callable[[str], None]) -> None:
        self.stack, self.sizes, self.say = stack, sizes, say
        self.key = secrets.token_bytes(32)
        run = secrets.token_hex(4)
        self.task_queue = f"bench-bare-{run}"
        self.prefix = f"bare-{run}"
        self.figures = BareFigures()
        self.worker = stack.proc(
            "bare-worker",
            python_argv(
                "-m",
                "bench.bare",
                "--address",
                stack.temporal_address,
                "--task-queue",
                self.task_queue,
                "--db",
                str(stack.workdir / "bare.sqlite3"),
            ),
            {CODEC_KEY_ENV: base64.b64encode(self.key).decode()},
        )
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the bare worker is not started")
        return self._client

    async def start(self) -> None:
        self.worker.start()
        self._client = await Client.connect(
            self.stack.temporal_address, data_converter=converter(self.key)
        )
        await wait_polling(self.client, self.task_queue, self.worker)
        self.say("bare: warm-up")
        for shape in SHAPES:
            warm = self.sizes.warmup
            await journeys(self.client, self.task_queue, shape, warm, warm, f"{self.prefix}-warm")

    async def one_step_block(self, block: int, calls: int) -> None:
        """``calls`` steps one at a time of each shape, added to the figures."""
        for shape in SHAPES:
            self.say(f"bare: {calls} steps one at a time, update {DESCRIBED[shape]}")
            steps = await one_step(
                self.client, self.task_queue, shape, calls, f"{self.prefix}-b{block}"
            )
            self.figures.one_step.setdefault(shape, Steps()).extend(steps)

    async def concurrent(self) -> None:
        sizes = self.sizes
        runs = [(shape, sizes.concurrency, sizes.journeys) for shape in ("activity", "local")]
        runs += [("local", c, max(sizes.journeys, 4 * c)) for c in sizes.ceiling]
        for shape, c, n in runs:
            self.say(f"bare: {n} journeys, {c} at once, update {DESCRIBED[shape]}")
            meter = CpuMeter(self.stack)
            result = await journeys(self.client, self.task_queue, shape, n, c, self.prefix)
            self.figures.cpu[f"bare journeys c={c}, {shape}"] = meter.cores()
            if c == sizes.concurrency:
                self.figures.journeys[shape] = result
            if shape == "local":
                self.figures.ceiling.append(result)
        self.figures.worker_memory = self.worker.stats()

    def stop(self) -> None:
        self.worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="The bare workflow's worker (bench)")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    key = base64.b64decode(os.environ[CODEC_KEY_ENV])
    # The product's worker runs on uvloop (worker.py): so does the bare one.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.address, args.task_queue, args.db, key))


if __name__ == "__main__":
    main()
