"""The processes of ``make run``, started one by one so that one can die alone.

honcho stops every process when one exits, so the fault suite cannot use it: here each
process (Temporal dev server, SMTP sink, worker, API) is a ``Proc`` that the fault driver
kills with SIGKILL and starts again, and that a supervisor restarts if it dies unplanned
(as systemd or a container runtime would), recording that it did.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import ROOT
from domain import search_attributes

BIN = Path(sys.executable).parent

# Ports of the suite: everything the test starts listens on 127.0.0.1 in
# [base, base + 100). FAULTS_PORT_BASE moves the whole block (two runs at once).
PORT_BASE = int(os.environ.get("FAULTS_PORT_BASE", "18500"))


@dataclass(frozen=True)
class Ports:
    temporal: int = PORT_BASE
    temporal_http: int = PORT_BASE + 1
    temporal_metrics: int = PORT_BASE + 2
    api: int = PORT_BASE + 10
    smtp: int = PORT_BASE + 20


@dataclass
class ProcEvent:
    at: float  # seconds since the scenario's start
    name: str
    what: str  # "started", "killed", "stopped", "exited rc=…" (unplanned)


@dataclass
class Proc:
    """One long-running process with its own log file per incarnation."""

    name: str
    argv: list[str]
    env: dict[str, str]
    logs: Path
    events: list[ProcEvent]
    clock: float
    ready_port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    planned_down: bool = False
    unplanned_exits: int = 0
    log_files: list[Path] = field(default_factory=list)

    def _note(self, what: str) -> None:
        self.events.append(ProcEvent(round(time.monotonic() - self.clock, 1), self.name, what))

    def start(self) -> None:
        self.incarnation += 1
        log = self.logs / f"{self.name}.{self.incarnation}.log"
        self.log_files.append(log)
        with log.open("wb") as out:
            # A session of its own: a signal to the test's terminal does not reach it, and
            # SIGKILL to the group takes any child with it.
            self.popen = subprocess.Popen(  # noqa: S603 (our own argv)
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.planned_down = False
        self._note("started")

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """kill -9, as a crash or an OOM kill would: nothing gets to clean up."""
        self.planned_down = True
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._note("killed (SIGKILL)")

    def stop(self) -> None:
        """An orderly stop (SIGTERM, then SIGKILL after 5 s)."""
        self.planned_down = True
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._note("stopped")

    async def wait_port(self, timeout: float = 60.0) -> None:
        if self.ready_port is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited while starting; see {self.log_files[-1]}")
            if port_open(self.ready_port):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not listening on {self.ready_port} after {timeout} s")

    def log_contains(self, text: str) -> bool:
        return bool(self.log_files) and text in self.log_files[-1].read_text(errors="replace")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def temporal_argv(ports: Ports, db_file: Path) -> list[str]:
    """The Procfile's dev server, on our ports, headless (no UI port to take)."""
    argv = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(ports.temporal),
        "--http-port",
        str(ports.temporal_http),
        "--metrics-port",
        str(ports.temporal_metrics),
        "--headless",
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
    ]
    kinds = {
        1: "Text",
        2: "Keyword",
        3: "Int",
        4: "Double",
        5: "Bool",
        6: "Datetime",
        7: "KeywordList",
    }
    for key in search_attributes.ALL:
        argv += ["--search-attribute", f"{key.name}={kinds[int(key.indexed_value_type)]}"]
    return argv


def python_argv(*args: str) -> list[str]:
    return [str(BIN / "python"), *args]


def api_argv(ports: Ports) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        "--factory",
        "api.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports.api),
        "--no-access-log",
    ]
