"""Screenshot of the Temporal UI's workflow list filtered to stuck signups (README, Operators).

Runs the project's own stack on throwaway state, with short timings so that signups get
stuck within a minute, and photographs the UI with Debian's headless chromium::

    .venv/bin/python -m devtools.ui_screenshot docs/screens/ui-stuck-signups.png

What it starts (all on 127.0.0.1, ports ``--base-port`` … ``+3``, state in a tmp dir that
is removed afterwards): the Temporal dev server with its Web UI and the custom search
attributes (as the Procfile), the SMTP sink, the worker and the API (``ECOKATSU_ENV=development``,
``ECOKATSU_SIGNUP_LINK_TTL=PT20S``, ``ECOKATSU_STUCK_SIGNUP_LINK_EXPIRED_AFTER=PT0S``). Through
the real API it asks for signup links for a few addresses and starts the demo user's
journey (so the list shows that the filter matters: the journey is not in it), waits until
the signups' links have expired, then loads the UI with the stuck-signup query built by
``domain.operators.stuck_rules`` (the query the README and ``cli.py journeys --stuck
--queries`` give). Every process it started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from temporalio.client import Client

from domain.operators import SIGNUP_TYPE, StuckPolicy, signup_stage, stuck_rules
from domain.signup import SignupStatus

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SIGNUP_ADDRESSES = ["sato@example.com", "suzuki@example.com", "tanaka@example.com"]
DEMO_LOGIN = {"user_id": "demo@example.com", "password": "Demo-EcoKatsu-2026"}
LINK_TTL = "PT20S"


def stuck_signup_query(now: datetime) -> str:
    """The README's stuck-signup view, with the limit these timings set (0: expired at all)."""
    expired = signup_stage(SignupStatus.LINK_EXPIRED)
    policy = StuckPolicy(signup_link_expired_after=timedelta(0))
    rule = next(
        r for r in stuck_rules(policy) if r.workflow_type == SIGNUP_TYPE and r.stage == expired
    )
    return rule.query(now)


def wait_until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        # Each runs in its own process group: stop it and whatever it spawned, nothing else.
        for proc in reversed(started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--base-port", type=int, default=19600)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--budget-ms", type=int, default=15000, help="chromium virtual time")
    args = parser.parse_args()
    temporal_port, ui_port, smtp_port, api_port = (args.base_port + i for i in range(4))
    tmp = Path(tempfile.mkdtemp(prefix="ui-screenshot-"))
    env = {
        **os.environ,
        "ECOKATSU_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp / 'store.sqlite3'}",
        "ECOKATSU_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "ECOKATSU_SMTP_HOST": "127.0.0.1",
        "ECOKATSU_SMTP_PORT": str(smtp_port),
        "ECOKATSU_WORKER_METRICS_PORT": "0",
        "ECOKATSU_TEMPORAL_METRICS_PORT": "0",
        "ECOKATSU_SIGNUP_LINK_TTL": LINK_TTL,
        "ECOKATSU_STUCK_SIGNUP_LINK_EXPIRED_AFTER": "PT0S",
    }
    logs = tmp / "logs"
    logs.mkdir()

    def spawn(name: str, *cmd: str | Path) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603 (our own argv)
            [str(c) for c in cmd],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    def cli(*words: str) -> None:
        argv = [str(VENV_BIN / "python"), "cli.py", *words]
        subprocess.run(argv, cwd=ROOT, env=env, check=True)  # noqa: S603 (our own argv)

    try:
        with processes() as started:
            spawn(
                "temporal",
                VENV_BIN / "temporal", "server", "start-dev", "--ip", "127.0.0.1",
                "--port", str(temporal_port), "--ui-port", str(ui_port),
                "--db-filename", tmp / "temporal.sqlite", "--log-level", "warn",
                "--search-attribute", "EcoStage=Keyword",
                "--search-attribute", "EcoStageEnteredAt=Datetime",
                "--search-attribute", "EcoReminderCount=Int",
                "--search-attribute", "EcoNeedsOperator=Bool",
            )  # fmt: skip
            spawn("mail", VENV_BIN / "python", "cli.py", "mailsink", "--port", str(smtp_port),
                  "--dir", tmp / "mail")  # fmt: skip
            cli("migrate")
            cli("seed-demo")
            cli("setup-temporal")
            spawn("worker", VENV_BIN / "python", "worker.py")
            spawn("api", VENV_BIN / "uvicorn", "--factory", "api.main:create_app",
                  "--host", "127.0.0.1", "--port", str(api_port))  # fmt: skip
            api = f"http://127.0.0.1:{api_port}"
            ui = f"http://127.0.0.1:{ui_port}"
            wait_until(lambda: httpx.get(f"{api}/v1/terms").is_success, "the API", 60)
            wait_until(lambda: httpx.get(ui).is_success, "the Temporal UI", 60)

            for address in SIGNUP_ADDRESSES:
                r = httpx.post(f"{api}/v1/points/signups", json={"email": address})
                print(f"POST /v1/points/signups → {r.status_code}")
            token = httpx.post(f"{api}/v1/session", json=DEMO_LOGIN).json()["access_token"]
            r = httpx.post(
                f"{api}/v1/journey", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            print(f"POST /v1/journey → {r.status_code} {r.json().get('stage')}")

            async def count(query: str) -> int:
                client = await Client.connect(f"127.0.0.1:{temporal_port}")
                return (await client.count_workflows(query)).count

            def all_stuck() -> bool:
                n = asyncio.run(count(stuck_signup_query(datetime.now(UTC))))
                print(f"stuck signups visible: {n}/{len(SIGNUP_ADDRESSES)}")
                return n >= len(SIGNUP_ADDRESSES)

            wait_until(all_stuck, "the signups' links to expire", 120)
            running = asyncio.run(count("ExecutionStatus = 'Running'"))
            print(f"running workflows in all: {running} (the journey is not stuck)")
            # Visibility answered; the UI reads the same store. A second more, so the
            # boundary `< now` of the query is safely after every signup's expiry.
            time.sleep(1)
            query = stuck_signup_query(datetime.now(UTC).replace(microsecond=0))
            url = f"{ui}/namespaces/default/workflows?" + urllib.parse.urlencode({"query": query})
            print(f"query: {query}")
            raw = tmp / "raw.png"
            subprocess.run(  # noqa: S603 (our own argv)
                [
                    args.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={tmp / 'chromium'}", "--window-size=1400,800",
                    f"--virtual-time-budget={args.budget_ms}", f"--screenshot={raw}", url,
                ],
                check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            args.output.parent.mkdir(parents=True, exist_ok=True)
            # As chromium wrote it (~110 KB for this flat UI): no re-encoding step to trust.
            shutil.copyfile(raw, args.output)
            print(json.dumps({"png": str(args.output), "bytes": args.output.stat().st_size}))
    finally:
        if os.environ.get("KEEP_TMP"):
            print(f"state and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
