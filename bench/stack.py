"""The processes of one bench run: the dev server, and whatever else is started on it.

Everything listens on 127.0.0.1; every process is stopped at the end, even on failure.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.procs import Ports, Proc, ProcStats, self_cpu_seconds, temporal_argv


@dataclass
class Stack:
    workdir: Path
    ports: Ports
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    temporal_port: int = 0

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def proc(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, argv, {**self.env, **(env or {})}, self.logs)
        self.procs[name] = p
        return p

    async def start_temporal(self, db_file: Path | None = None) -> Proc:
        self.temporal_port = self.ports.take()
        http, metrics = self.ports.take(), self.ports.take()
        temporal = self.proc("temporal", temporal_argv(self.temporal_port, http, metrics, db_file))
        temporal.start()
        await temporal.wait_port(self.temporal_port, timeout=60)
        return temporal

    def stats(self) -> dict[str, ProcStats]:
        found = {}
        for name, p in self.procs.items():
            s = p.stats()
            if s is not None:
                found[name] = s
        return found

    def stop_all(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()


async def wait_polling(
    client: Client, task_queue: str, proc: Proc, timeout: float = 90.0, activities: bool = False
) -> float:
    """Seconds until ``proc`` polls ``task_queue`` for workflow tasks (``activities``: for
    activity tasks), as the server sees it (a poller whose identity is the process's:
    ``<pid>@<host>``, the SDK's default)."""
    started = time.monotonic()
    prefix = f"{proc.pid}@"
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        if activities
        else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    )
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=kind,
    )
    while time.monotonic() - started < timeout:
        proc.check_alive()
        described = await client.workflow_service.describe_task_queue(request)
        if any(p.identity.startswith(prefix) for p in described.pollers):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{proc.name} did not poll {task_queue} within {timeout} s")


class CpuMeter:
    """CPU time of the stack's processes (and the bench's own) over a phase, in cores."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._started = time.perf_counter()
        self._before = self._now()

    def _now(self) -> dict[str, float]:
        found = {name: s.cpu_seconds for name, s in self._stack.stats().items()}
        found["bench client"] = self_cpu_seconds()
        return found

    def cores(self) -> dict[str, float]:
        wall = time.perf_counter() - self._started
        after = self._now()
        return {
            name: round((after[name] - self._before.get(name, 0.0)) / wall, 2)
            for name in after
            if after[name] - self._before.get(name, 0.0) > 0.01 * wall
        }
