"""``make bench-idle``: N journeys waiting on their reminder timers, then a worker restart.

On a dev server of its own: the SMTP sink, the store (N accounts seeded in bulk, each
with one eligible gateway) and one worker (``python worker.py``), as ``make bench`` starts
them. The journeys are started with the Temporal client as the API starts them
(``journey_starts.start_journey``), a bounded number at once; each checks eligibility,
mails its invitation and waits in ``awaiting_consent`` for its first reminder (3 days).

Reported: the worker's memory once all wait (and its peak), the journeys by stage and by
execution status (visibility counts), workflow and activity task failures (the worker's
SDK metrics, and a sample of histories), and the time the worker takes to come back after
``kill -9``: until it polls again, and until status queries of a random sample of the
journeys (not cached in the new process: each replays its history) have all answered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.procs import Ports, Proc, ProcStats, machine, temporal_version
from bench.product import Product, start_product
from bench.stack import Stack, wait_polling
from bench.stats import ms, percentile, run_pool
from config import ROOT
from domain.enrollment import Stage
from domain.ids import enrollment_workflow_id
from journey_starts import start_journey
from temporal_client import connect
from workflows.enrollment import EnrollmentWorkflow

STATUSES = (
    "Running",
    "Completed",
    "Failed",
    "Terminated",
    "TimedOut",
    "Canceled",
    "ContinuedAsNew",
)
FAILED_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
}
# The SDK's failure counters (Prometheus names, as the worker exports them).
FAILURE_METRICS = (
    "temporal_workflow_task_execution_failed",
    "temporal_activity_execution_failed",
    "temporal_local_activity_execution_failed",
)


# The "worker RSS ≤ 300 MB", in megabytes (286 MiB); RSS is read in MiB.
GOAL_MB = 300
MIB = 1024 * 1024


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class IdleSizes:
    journeys: int = 10_000
    start_concurrency: int = 20
    in_flight: int = 500  # started, not yet waiting (below the worker's cache of 1,000)
    sample: int = 20  # journeys queried after the restart, and histories searched
    settle_timeout: float = 1800.0


@dataclass
class Restart:
    polls_after: float  # seconds from the kill
    answered_after: float  # seconds from the kill until every sample query answered
    queries: list[float]
    memory: ProcStats | None


@dataclass
class IdleFigures:
    journeys: int
    seed_seconds: float = 0.0
    start_seconds: float = 0.0  # all starts accepted by the server
    settle_seconds: float = 0.0  # until all wait in awaiting_consent with their invitation
    mails: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, float] | None = None  # metric → count (None: not exported)
    failed_events: int = 0  # in the sampled histories
    sampled: int = 0
    rss_timeline: list[tuple[int, float]] = field(default_factory=list)  # (waiting, MiB)
    worker_waiting: ProcStats | None = None
    temporal: ProcStats | None = None
    restart: Restart | None = None
    stages_after: dict[str, int] = field(default_factory=dict)
    failures_after: dict[str, float] | None = None


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def failure_counts(port: int) -> dict[str, float] | None:
    """The worker's SDK failure counters, summed over their labels (a counter never
    incremented is not exported: 0); None when the endpoint does not export the SDK's
    metrics (its count of started workers is always there)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    if "\ntemporal_worker_start" not in "\n" + text:
        return None
    found = dict.fromkeys(FAILURE_METRICS, 0.0)
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+?)(?:_total)?(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if match and match.group(1) in found:
            found[match.group(1)] += float(match.group(2))
    return found


async def by_stage(client: Client, base: str) -> dict[str, int]:
    counts = {s.value: await count(client, f"{base} AND EcoStage = '{s.value}'") for s in Stage}
    return {k: v for k, v in counts.items() if v}


async def measure_idle(stack: Stack, sizes: IdleSizes) -> IdleFigures:
    figures = IdleFigures(sizes.journeys)
    task_queue = f"bench-idle-{secrets.token_hex(4)}"
    say("mail sink, store, worker")
    product = await start_product(stack, task_queue, workers=1, apis=0)
    worker = product.workers[0]
    metrics_port = int(worker.env["ECOKATSU_TEMPORAL_METRICS_PORT"])
    client = await connect(product.settings, wait=30)
    base = f"WorkflowType = 'EnrollmentWorkflow' AND TaskQueue = '{task_queue}'"

    say(f"seeding {sizes.journeys} accounts")
    started = time.perf_counter()
    customers = product.customers.take(sizes.journeys)
    figures.seed_seconds = time.perf_counter() - started

    say(
        f"starting {sizes.journeys} journeys, {sizes.start_concurrency} starts at once, "
        f"at most {sizes.in_flight} on their way to waiting"
    )
    started = time.perf_counter()
    done = 0
    waiting = 0
    room = asyncio.Event()  # set by the count below while fewer than `in_flight` are on their way

    async def start(account_id: str) -> None:
        nonlocal done
        # A soft bound (visibility lags a little): a backlog larger than the worker's
        # cache would only measure evictions and replays.
        while done - waiting >= sizes.in_flight:
            room.clear()
            await room.wait()
        done += 1
        await start_journey(client, product.settings, account_id, anew=True)

    async def starts() -> None:
        figures.start_seconds = await run_pool(
            sizes.start_concurrency, [c.account_id for c in customers], start
        )

    starting = asyncio.create_task(starts())
    last_said = 0.0
    while True:
        await asyncio.sleep(1.0)
        if starting.done():
            starting.result()  # a failed start stops the bench
        waiting = await count(client, f"{base} AND EcoStage = '{Stage.AWAITING_CONSENT.value}'")
        room.set()
        figures.mails = product.mailbox.count()
        worker.check_alive()
        stats = worker.stats()
        if stats is not None:
            figures.rss_timeline.append((waiting, stats.rss_mib))
        elapsed = time.perf_counter() - started
        if elapsed - last_said >= 10:
            last_said = elapsed
            say(
                f"  {elapsed:5.0f} s: {done} started, {waiting} waiting, {figures.mails} "
                f"invitations, worker {stats.rss_mib if stats else 0:.0f} MiB"
            )
        if starting.done() and waiting >= sizes.journeys and figures.mails >= sizes.journeys:
            break
        if elapsed > sizes.settle_timeout:
            raise TimeoutError(f"only {waiting} of {sizes.journeys} journeys waiting")
    figures.settle_seconds = time.perf_counter() - started
    await asyncio.sleep(3.0)  # let the last tasks finish; then the resting state
    figures.worker_waiting = worker.stats()
    figures.temporal = stack.procs["temporal"].stats()
    figures.stages = await by_stage(client, base)
    figures.statuses = {
        s: n for s in STATUSES if (n := await count(client, f"{base} AND ExecutionStatus = '{s}'"))
    }
    figures.failures = await failure_counts(metrics_port)

    sample = random.sample(customers, min(sizes.sample, len(customers)))
    figures.sampled = len(sample)
    for customer in sample:
        handle = client.get_workflow_handle(enrollment_workflow_id(customer.account_id))
        history = await handle.fetch_history()
        figures.failed_events += sum(1 for e in history.events if e.event_type in FAILED_EVENTS)

    say("kill -9 the worker and start it again")
    figures.restart = await restart(product, client, worker, [c.account_id for c in sample])
    figures.stages_after = await by_stage(client, base)
    figures.failures_after = await failure_counts(metrics_port)
    product.engine.dispose()
    return figures


async def restart(product: Product, client: Client, worker: Proc, sample: list[str]) -> Restart:
    worker.kill9()
    killed = time.monotonic()
    worker.start()
    await wait_polling(client, product.settings.task_queue, worker)
    polls_after = time.monotonic() - killed
    queries = []
    for account_id in sample:
        handle = client.get_workflow_handle_for(
            EnrollmentWorkflow.run, enrollment_workflow_id(account_id)
        )
        sent = time.perf_counter()
        status = await handle.query(EnrollmentWorkflow.get_status)
        queries.append(time.perf_counter() - sent)
        if status.stage != Stage.AWAITING_CONSENT:
            raise RuntimeError(f"a sampled journey is in {status.stage} after the restart")
    answered_after = time.monotonic() - killed
    return Restart(polls_after, answered_after, queries, worker.stats())


def failure_text(failures: dict[str, float] | None) -> str:
    if failures is None:
        return "the worker's SDK metrics were not available"
    return ", ".join(f"{k.removeprefix('temporal_')} {v:.0f}" for k, v in failures.items())


def render(figures: IdleFigures, sizes: IdleSizes, meta: str) -> str:
    out = [meta, ""]
    add = out.append
    n = figures.journeys
    waiting = figures.worker_waiting
    add(f"{n} journeys waiting on their reminder timers (awaiting_consent, 1st reminder in 3 days)")
    add(
        f"  seeded in {figures.seed_seconds:.1f} s; started in {figures.start_seconds:.0f} s "
        f"({sizes.start_concurrency} at once); all waiting, {figures.mails} invitations mailed, "
        f"after {figures.settle_seconds:.0f} s ({n / figures.settle_seconds:.0f} journeys/s)"
    )
    if waiting is not None:
        rss_mb, hwm_mb = waiting.rss_mib * MIB / 1e6, waiting.hwm_mib * MIB / 1e6
        add(
            f"  worker RSS once all wait: {waiting.rss_mib:.0f} MiB = {rss_mb:.0f} MB "
            f"(peak {waiting.hwm_mib:.0f} MiB = {hwm_mb:.0f} MB); goal ≤ {GOAL_MB} MB: "
            + ("met" if rss_mb <= GOAL_MB else "MISSED")
            + ("" if hwm_mb <= GOAL_MB else ", the peak above it")
        )
    if figures.temporal is not None:
        add(
            f"  dev server RSS: {figures.temporal.rss_mib:.0f} MiB "
            f"(peak {figures.temporal.hwm_mib:.0f} MiB)"
        )
    if figures.rss_timeline:
        step = max(1, len(figures.rss_timeline) // 8)
        points = figures.rss_timeline[::step] + figures.rss_timeline[-1:]
        add(
            "  worker RSS while they started (waiting → MiB): "
            + ", ".join(f"{w} → {m:.0f}" for w, m in points)
        )
    add(f"  by stage: {figures.stages}; by status: {figures.statuses}")
    counted = sum(figures.failures.values()) if figures.failures is not None else 0
    failures = counted + figures.failed_events
    others = n - figures.stages.get(Stage.AWAITING_CONSENT.value, 0)
    add(
        f"  failures: {others} journeys not waiting; {failure_text(figures.failures)}; "
        f"{figures.failed_events} failed or timed-out tasks in {figures.sampled} sampled histories"
        f" → {'zero failures' if failures == 0 and others == 0 else 'FAILURES'}"
    )
    r = figures.restart
    if r is not None:
        add(
            f"  worker killed -9 and started at once: polls again after {r.polls_after:.1f} s; "
            f"{len(r.queries)} status queries of random journeys (uncached: each replays) all "
            f"answered {r.answered_after:.1f} s after the kill "
            f"(query p50 {ms(percentile(r.queries, 0.5))}, max {ms(max(r.queries))})"
        )
        if r.memory is not None:
            add(f"  the restarted worker: {r.memory.rss_mib:.0f} MiB")
        add(
            f"  after the restart: by stage {figures.stages_after}; "
            f"{failure_text(figures.failures_after)}"
        )
    return "\n".join(out) + "\n"


async def run_idle(
    workdir: Path, ports: Ports, sizes: IdleSizes, temporal_db: Path | None = None
) -> tuple[IdleFigures, str]:
    started = time.perf_counter()
    meta = (
        f"make bench-idle, {time.strftime('%Y-%m-%d %H:%M')}: {machine()}\n"
        f"{temporal_version()}; dev server "
        + (f"on a SQLite file ({temporal_db}, WAL)" if temporal_db else "in memory")
    )
    stack = Stack(workdir, ports, {**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await stack.start_temporal(temporal_db)
        figures = await measure_idle(stack, sizes)
    finally:
        stack.stop_all()
    meta += f"; run took {time.perf_counter() - started:.0f} s"
    return figures, render(figures, sizes, meta)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    s = IdleSizes()
    parser.add_argument("--journeys", "-n", type=int, default=s.journeys)
    parser.add_argument("--concurrency", "-c", type=int, default=s.start_concurrency)
    parser.add_argument("--sample", type=int, default=s.sample)
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "18000")) + 100
    )
    parser.add_argument("--temporal-db", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "idle-last-run.txt")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = IdleSizes(args.journeys, args.concurrency, args.sample)
    workdir = Path(tempfile.mkdtemp(prefix="ecokatsu-bench-idle-"))
    ok = False
    try:
        _, report = asyncio.run(run_idle(workdir, Ports(args.port_base), sizes, args.temporal_db))
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"the run's logs, store and mails are kept in {workdir}")
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    say(f"report written to {args.out}")


if __name__ == "__main__":
    main()
