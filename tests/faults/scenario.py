"""The fault scenario: the ``make run`` stack as separate processes, 30 journeys through
the API, and a fault driver that kills and stops parts of the stack while they run.

Timeline (seconds after the first journey starts; journeys start every 1.4 s until 41 s):

     8  kill -9 the worker, start it again 3 s later
    22  kill -9 the Temporal dev server (state in a SQLite file), start it 5 s later
    40  kill -9 the worker again (at least 5 s after it polled again)
    50  stop the SMTP sink for 40 s
    75  kill -9 the worker a third time (idem)
   165  journeys still running are stuck; the checks start

The arrival rate is what the API can take here: each journey costs two argon2id hashes
(announcement, login) of about a second of CPU each on this busy 2-core machine. At one
journey a second the API fell behind for good (see README, Tests: a client that times out
and retries adds a hash while the abandoned request still runs).

Everything is bounded: each request by its time budget, each journey by rounds and the
deadline, the checks by their own short waits. The whole run takes about 3.5 minutes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from config import ROOT, Settings
from temporal_client import connect, ensure_search_attributes
from tests.faults.client import RecordingClient
from tests.faults.journey import SYSTEM_KEY, Journey, Shared
from tests.faults.mailbox import Mailbox
from tests.faults.processes import (
    Ports,
    Proc,
    ProcEvent,
    api_argv,
    python_argv,
    temporal_argv,
)
from tests.faults.report import Fault, Report, build_report

JOURNEYS = 30
JOURNEY_SPACING = 1.4
JOURNEY_DEADLINE = 165.0
WORKER_KILLS = (8.0, 40.0, 75.0)
WORKER_DOWN = 3.0
WORKER_UP_BEFORE_KILL = 5.0
TEMPORAL_KILL = 22.0
TEMPORAL_DOWN = 5.0
SMTP_STOP = 50.0
SMTP_DOWN = 40.0
# Mails a journey must have received by the end (waited for, briefly, after the journeys).
MAIL_GRACE = 15.0
CODEC_KEY = base64.b64encode(b"faults-suite-key-not-for-use-32b").decode()


def stack_env(ports: Ports, workdir: Path) -> dict[str, str]:
    """The environment of every process: config.py reads ECOKATSU_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOKATSU_")}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'store.sqlite3'}",
            "ECOKATSU_TEMPORAL_ADDRESS": f"127.0.0.1:{ports.temporal}",
            "ECOKATSU_TASK_QUEUE": "eco-katsu-faults",
            "ECOKATSU_SMTP_HOST": "127.0.0.1",
            "ECOKATSU_SMTP_PORT": str(ports.smtp),
            "ECOKATSU_SMTP_TIMEOUT_SECONDS": "5",
            "ECOKATSU_WORKFLOW_ANSWER_TIMEOUT": "PT5S",
            "ECOKATSU_SYSTEM_API_KEY": SYSTEM_KEY,
            "ECOKATSU_SECRET_KEY": "faults-suite-session-key",
            "ECOKATSU_SIGNUP_LINK_KEY": "faults-suite-signup-link-key",
            "ECOKATSU_CODEC_KEYS": json.dumps({"faults-1": CODEC_KEY}),
            "ECOKATSU_CODEC_KEY_ID": "faults-1",
            # Short reminders so that some fall inside the run; no quiet hours.
            "ECOKATSU_REMINDER_DELAYS": '["PT40S","PT80S","PT120S"]',
            "ECOKATSU_QUIET_START": "00:00",
            "ECOKATSU_QUIET_END": "00:00",
            "ECOKATSU_SIGNUP_RESEND_COOLDOWN": "PT2S",
            "ECOKATSU_SIGNUP_IDLE_REMINDER_AFTER": "PT90S",
            # All 30 customers come from 127.0.0.1: the per-client limit must not bite.
            "ECOKATSU_SIGNUP_REQUESTS_PER_HOUR": "100000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Stack:
    ports: Ports
    workdir: Path
    env: dict[str, str]
    clock: float
    events: list[ProcEvent] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)

    def proc(self, name: str, argv: list[str], ready_port: int | None = None) -> Proc:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        p = Proc(name, argv, self.env, logs, self.events, self.clock, ready_port)
        self.procs[name] = p
        return p

    async def start(self) -> None:
        """Start everything at once, as honcho does."""
        migrate = await asyncio.create_subprocess_exec(
            *python_argv("cli.py", "migrate"), env=self.env, cwd=ROOT
        )
        temporal = self.proc(
            "temporal",
            temporal_argv(self.ports, self.workdir / "temporal.sqlite"),
            self.ports.temporal,
        )
        mail = self.proc(
            "mailsink",
            python_argv(
                "cli.py", "mailsink", "--port", str(self.ports.smtp), "--dir", str(self.maildir)
            ),
            self.ports.smtp,
        )
        worker = self.proc("worker", python_argv("worker.py"))
        api = self.proc("api", api_argv(self.ports), self.ports.api)
        for p in (temporal, mail, worker, api):
            p.start()
        if await migrate.wait() != 0:
            raise RuntimeError("cli.py migrate failed")
        await temporal.wait_port()
        await asyncio.gather(mail.wait_port(), api.wait_port(90), self.worker_ready(90))

    @property
    def maildir(self) -> Path:
        return self.workdir / "mail"

    async def worker_ready(self, timeout: float = 60.0) -> float:
        """Seconds until this incarnation of the worker polls its task queue (None of a
        later incarnation's lines count: a worker killed before it polled never came back)."""
        started = time.monotonic()
        worker = self.procs["worker"]
        log = worker.log_files[-1]
        while time.monotonic() - started < timeout and worker.log_files[-1] == log:
            if "polling task queue" in log.read_text(errors="replace"):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise TimeoutError("the worker did not start polling")

    def kill_all(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.kill9()

    async def supervise(self, until: asyncio.Event) -> None:
        """Restart a process that died unplanned (as a process manager would) and note it."""
        while not until.is_set():
            for p in self.procs.values():
                if not p.planned_down and not p.running and p.popen is not None:
                    p.unplanned_exits += 1
                    p.events.append(
                        ProcEvent(
                            round(time.monotonic() - self.clock, 1),
                            p.name,
                            f"exited unplanned rc={p.popen.returncode}",
                        )
                    )
                    p.planned_down = True
                    asyncio.get_running_loop().call_later(2.0, p.start)
            await asyncio.sleep(0.5)


async def fault_driver(stack: Stack, t0: float, faults: list[Fault]) -> None:
    """The faults at their moments after ``t0``; each noted in the stack's clock."""

    async def at(moment: float) -> None:
        await asyncio.sleep(max(0.0, t0 + moment - time.monotonic()))

    worker_back = asyncio.Event()
    worker_back.set()

    async def kill_worker(moment: float) -> None:
        await at(moment)
        # A kill is a kill mid-journey only if the worker was back from the previous one:
        # on a busy machine a restart can take 25 s, so wait for it (at most 60 s).
        if not worker_back.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker_back.wait(), timeout=60)
            await asyncio.sleep(WORKER_UP_BEFORE_KILL)
        worker_back.clear()
        worker = stack.procs["worker"]
        fault = Fault("kill -9 worker", round(time.monotonic() - stack.clock, 1))
        faults.append(fault)
        worker.kill9()
        await asyncio.sleep(WORKER_DOWN)
        worker.start()
        try:
            fault.back_after = round(WORKER_DOWN + await stack.worker_ready(), 1)
        except TimeoutError:
            fault.back_after = None
        worker_back.set()

    async def kill_temporal() -> None:
        await at(TEMPORAL_KILL)
        temporal = stack.procs["temporal"]
        fault = Fault("kill -9 Temporal dev server", round(time.monotonic() - stack.clock, 1))
        faults.append(fault)
        temporal.kill9()
        await asyncio.sleep(TEMPORAL_DOWN)
        started = time.monotonic()
        temporal.start()
        await temporal.wait_port()
        fault.back_after = round(TEMPORAL_DOWN + time.monotonic() - started, 1)

    async def stop_smtp() -> None:
        await at(SMTP_STOP)
        sink = stack.procs["mailsink"]
        fault = Fault("SMTP sink stopped", round(time.monotonic() - stack.clock, 1))
        faults.append(fault)
        sink.stop()
        await asyncio.sleep(SMTP_DOWN)
        started = time.monotonic()
        sink.start()
        await sink.wait_port()
        fault.back_after = round(SMTP_DOWN + time.monotonic() - started, 1)

    async def kill_workers() -> None:
        for moment in WORKER_KILLS:
            await kill_worker(moment)

    await asyncio.gather(kill_temporal(), stop_smtp(), kill_workers())


async def fast_reader(shared: Shared, stop: asyncio.Event) -> None:
    """Opens every link the moment its mail is delivered (mail scanners and quick
    customers do): it must already work."""
    opened: set[str] = set()
    pending: set[asyncio.Task[str | None]] = set()
    while not stop.is_set():
        shared.register_mails()
        for token, seen in list(shared.links.items()):
            if token not in opened:
                opened.add(token)
                task = asyncio.create_task(shared.open_link(seen.journey, token, "fast reader"))
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.sleep(0.1)
    for task in list(pending):
        task.cancel()


async def run_scenario(workdir: Path, ports: Ports | None = None, seed: int = 6) -> Report:
    ports = ports or Ports()
    workdir.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()
    wall = time.time()
    env = stack_env(ports, workdir)
    stack = Stack(ports, workdir, env, clock)
    faults: list[Fault] = []
    journeys: list[Journey] = []
    stop = asyncio.Event()
    settings = Settings(
        temporal_address=env["ECOKATSU_TEMPORAL_ADDRESS"],
        codec_keys={"faults-1": SecretStr(CODEC_KEY)},
        codec_key_id="faults-1",
    )
    try:
        await stack.start()
        temporal = await connect(settings, wait=30)
        # What `cli.py setup-temporal` does (the worker does it too at every start).
        await ensure_search_attributes(temporal, settings.temporal_namespace)
        t0 = time.monotonic()
        async with RecordingClient(f"http://127.0.0.1:{ports.api}", clock) as api:
            shared = Shared(
                api=api,
                mailbox=Mailbox(stack.maildir, settings.points_registration_url, wall),
                temporal=temporal,
                database_url=env["DATABASE_URL"],
                deadline=t0 + JOURNEY_DEADLINE,
                clock=clock,
            )
            rng = random.Random(seed)
            journeys = [
                Journey(i, shared, random.Random(rng.random()), resends=i % 3 == 0)
                for i in range(JOURNEYS)
            ]

            async def start_journey(j: Journey) -> None:
                await asyncio.sleep(j.index * JOURNEY_SPACING)
                await j.run()

            supervisor = asyncio.create_task(stack.supervise(stop))
            reader = asyncio.create_task(fast_reader(shared, stop))
            driver = asyncio.create_task(fault_driver(stack, t0, faults))
            runs = [asyncio.create_task(start_journey(j)) for j in journeys]
            _, late = await asyncio.wait(runs, timeout=JOURNEY_DEADLINE + 25)
            for task in late:
                task.cancel()
            await asyncio.wait_for(driver, timeout=90)
            # The checks: late mails get a short grace; then every mailed link is opened.
            await wait_for_mails(shared, journeys, MAIL_GRACE)
            stop.set()
            await reader
            shared.register_mails()
            for token, seen in list(shared.links.items()):
                await shared.open_link(seen.journey, token, "final check")
            stop.set()
            await supervisor
            api.dump(workdir / "exchanges.jsonl")
            report = build_report(
                journeys=journeys,
                shared=shared,
                faults=faults,
                events=stack.events,
                unplanned={p.name: p.unplanned_exits for p in stack.procs.values()},
                duration=time.monotonic() - clock,
                first_journey_at=t0 - clock,
                workdir=workdir,
            )
            report.save(workdir / "report.json")
            return report
    finally:
        stop.set()
        stack.kill_all()


def expected_kinds(journey: Journey) -> list[str]:
    """What a customer must have in the mailbox: the invitation once announced, and every
    mail of the way once enrolled."""
    if journey.finished:
        return ["invitation", "application_complete", "signup_link", "signup_complete"]
    return ["invitation"] if journey.account_id or journey.auth else []


def missing_mails(shared: Shared, journeys: list[Journey]) -> list[str]:
    missing = []
    for j in journeys:
        kinds = {m.kind for m in shared.mailbox.for_address(j.email)}
        missing += [f"journey {j.index}: {k}" for k in expected_kinds(j) if k not in kinds]
    return missing


async def wait_for_mails(shared: Shared, journeys: list[Journey], grace: float) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not missing_mails(shared, journeys):
            return
        await asyncio.sleep(0.5)
