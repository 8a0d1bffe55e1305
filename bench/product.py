"""The product as ``make run`` runs it, measured over real HTTP.

Separate processes on the bench's dev server: the SMTP sink (``cli.py mailsink``, mails
kept as .eml files), the worker (``python worker.py``; with ``--mail-worker``, ``--only
workflows`` and ``--only mail`` for the mails' task queue) and the API (uvicorn, as
docker-compose serves it), configured by ``ECOKATSU_*`` variables, on a SQLite store in
the run's directory (``cli.py migrate`` first). Accounts are seeded directly in the store
(one argon2id hash shared by all, as a fixture would).

Logins are measured on their own. Where a phase excludes login (whole journeys, the step
traffic under a login burst, the scaled run), the bench signs the session tokens itself
with the run's session key, as ``POST /v1/session`` would: hashing hundreds of passwords
first would only make the run longer.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import secrets
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.security import SessionTokens, hash_password
from bench.bare import BareBench, JourneyRun
from bench.procs import Proc, ProcStats, api_argv, python_argv
from bench.stack import CpuMeter, Stack, wait_polling
from bench.stats import Steps, run_pool
from config import Settings
from devtools.mailsink import LINK
from store.engine import make_engine
from store.tables import Account, Gateway
from temporal_client import connect

PASSWORD = secrets.token_urlsafe(12) + "-Aa1"  # the customers' (one per run)
# The members' password at STEP4: fresh per run, like the customers' (printable ASCII,
# upper, lower, digit and a symbol, as the guide's rule asks).
POINTS_PASSWORD = secrets.token_urlsafe(12) + "-Pt7"
CUSTOMER_FORM: dict[str, Any] = {
    "name": "笑顔 太郎",
    "furigana": "えがお たろう",
    "address": {
        "postal_code": "530-0001",
        "prefecture": "大阪府",
        "address": "大阪市北区梅田1-2-3",
    },
    "phone": ["06", "1234", "5678"],
    "password": POINTS_PASSWORD,
    "password_confirmation": POINTS_PASSWORD,
}
LINK_MAIL = "会員登録URLのお知らせ"
HOLDER_MAIL = "会員登録の確認のお願い"
CIRCLE_STEPS = ("start", "consent", "apply", "status")
POINTS_STEPS = (
    "signup request",
    "link",
    "begin",
    "document",
    "agreement",
    "gateway",
    "customer",
    "confirmation",
    "holder link",
    "holder confirm",
    "register",
)


class BenchError(RuntimeError):
    """An answer the walk did not expect: the bench stops (the figures would be wrong)."""


@dataclass(frozen=True)
class Customer:
    account_id: str
    email: str
    gateway_id: str
    pcs_serial: str


def seed(engine: Engine, first: int, count: int, password_hash: str) -> list[Customer]:
    """``count`` individual accounts, each with one eligible gateway, in a few
    transactions (``store.enrollment.create_account`` makes the same rows one by one)."""
    customers = []
    batch = 1000
    for start in range(first, first + count, batch):
        with Session(engine) as session:
            for i in range(start, min(start + batch, first + count)):
                account = Account(
                    email=f"bench{i}@example.com",
                    password_hash=password_hash,
                    display_name=f"ベンチ {i}",
                    holder_type="individual",
                )
                gateway = Gateway(
                    gateway_id=f"BG{i:010d}",
                    pcs_serial=f"P{i:07d}",
                    model="KPBP-A",
                    pv_unit_in_use=True,
                    battery_unit_in_use=True,
                    account_id=account.id,
                )
                session.add(account)
                session.add(gateway)
                customers.append(
                    Customer(account.id, account.email, gateway.gateway_id, gateway.pcs_serial)
                )
            session.commit()
    return customers


class Customers:
    """Fresh seeded customers, handed out in order."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._next = 0
        self._hash = hash_password(PASSWORD)

    def take(self, count: int) -> list[Customer]:
        taken = seed(self._engine, self._next, count, self._hash)
        self._next += count
        return taken


class Mailbox:
    """The sink's .eml files, read as the customers' mailboxes: the tokens of the links
    mailed to an address, by the mail's subject."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen: set[str] = set()
        self._tokens: dict[tuple[str, str], list[str]] = {}

    def count(self) -> int:
        return sum(1 for _ in os.scandir(self.directory)) if self.directory.exists() else 0

    async def settled(self, quiet: float = 0.3, timeout: float = 30.0) -> bool:
        """Whether no mail came for ``quiet`` seconds (the steps' mails are out) within
        ``timeout``."""
        deadline = time.monotonic() + timeout
        seen, since = self.count(), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
            now = self.count()
            if now != seen:
                seen, since = now, time.monotonic()
        return True

    def _scan(self, subjects: tuple[str, ...]) -> None:
        if not self.directory.exists():
            return
        for entry in os.scandir(self.directory):
            if entry.name in self._seen or not entry.name.endswith(".eml"):
                continue
            content = Path(entry.path).read_bytes()
            # Our mails are multipart/alternative; one still being written lacks the
            # closing boundary and waits for the next scan.
            if not content.rstrip().endswith(b"--"):
                continue
            self._seen.add(entry.name)
            message = message_from_bytes(content, policy=policy.default)
            if not isinstance(message, EmailMessage):
                continue
            subject = str(message["Subject"])
            wanted = next((s for s in subjects if s in subject), None)
            if wanted is None:
                continue
            [(_, to)] = getaddresses([str(message["To"])])
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            tokens = [link.split("#", 1)[1] for link in LINK.findall(text) if "#" in link]
            self._tokens.setdefault((to.lower(), wanted), []).extend(tokens)

    async def token(self, to: str, subject: str, timeout: float = 60.0) -> str:
        """The token of the first link mailed to ``to`` under ``subject``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._scan((LINK_MAIL, HOLDER_MAIL))
            found = self._tokens.get((to.lower(), subject))
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise BenchError(f"no mail {subject!r} to {to} within {timeout} s")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, its body read in full."""

    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """HTTP clients of the API processes; each call goes to the next one (round robin,
    as the deployment's proxy balances).

    aiohttp, not httpx: the client's own CPU is on every step's clock and on the same two
    cores as the product. Against a bare ASGI app here, httpx's ``AsyncClient`` took
    2.4 ms of CPU per request and aiohttp's 0.36 ms (encode/httpx#3215 reports the same
    gap), which is about what the bare workflow's Temporal client costs per call."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [
            aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{p}",
                timeout=aiohttp.ClientTimeout(total=60),
                connector=aiohttp.TCPConnector(limit=500),
            )
            for p in ports
        ]
        self._cycle: Iterator[aiohttp.ClientSession] = itertools.cycle(self.clients)

    async def call(
        self,
        steps: Steps | None,
        step: str,
        method: str,
        path: str,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> Answer:
        http = next(self._cycle)
        sent = time.perf_counter()
        async with http.request(method, path, **kwargs) as response:
            answer = Answer(response.status, await response.read())
        if steps is not None:
            steps.add(step, sent, time.perf_counter() - sent)
        if answer.status_code not in expect:
            raise BenchError(
                f"{step}: {method} {path} answered {answer.status_code} {answer.text[:300]}"
            )
        return answer

    async def aclose(self) -> None:
        for http in self.clients:
            await http.close()


@dataclass
class Product:
    """The product's processes on a stack, and the walks through its API."""

    stack: Stack
    settings: Settings  # what the processes read from their environment
    env: dict[str, str]
    engine: Engine
    customers: Customers
    mailbox: Mailbox
    workers: list[Proc] = field(default_factory=list)
    mail_workers: list[Proc] = field(default_factory=list)
    apis: list[tuple[Proc, int]] = field(default_factory=list)

    @property
    def tokens(self) -> SessionTokens:
        return SessionTokens(self.settings.secret_key.get_secret_value(), 12 * 3600)

    def auth(self, customer: Customer, token: str | None = None) -> dict[str, str]:
        token = token or self.tokens.issue(customer.account_id)
        return {"Authorization": f"Bearer {token}"}

    def _metrics_ports(self) -> dict[str, str]:
        return {
            "ECOKATSU_WORKER_METRICS_PORT": str(self.stack.ports.take()),
            "ECOKATSU_TEMPORAL_METRICS_PORT": str(self.stack.ports.take()),
        }

    async def add_worker(self) -> Proc:
        """A worker (``worker.py``, as ``make run`` starts it)."""
        n = len(self.workers) + 1
        argv = python_argv("worker.py")
        if self.settings.mail_task_queue:
            argv += ["--only", "workflows"]
        worker = self.stack.proc(f"worker{n}", argv, self._metrics_ports())
        worker.start()
        self.workers.append(worker)
        return worker

    async def add_mail_worker(self) -> Proc:
        """The mails' worker (``worker.py --only mail``), a process of its own."""
        argv = python_argv("worker.py", "--only", "mail")
        worker = self.stack.proc("mailworker", argv, self._metrics_ports())
        worker.start()
        self.mail_workers.append(worker)
        return worker

    async def add_api(self) -> tuple[Proc, int]:
        port = self.stack.ports.take()
        api = self.stack.proc(f"api{len(self.apis) + 1}", api_argv(port))
        api.start()
        self.apis.append((api, port))
        return api, port

    async def ready(self, procs: list[Proc]) -> None:
        """Every new API answers /healthz and every new worker polls its task queue."""
        client = await connect(self.settings, wait=30)
        waits: list[Awaitable[object]] = []
        for p in procs:
            if any(p is w for w in self.workers):
                waits.append(wait_polling(client, self.settings.task_queue, p))
            elif any(p is w for w in self.mail_workers):
                queue = self.settings.mail_task_queue
                waits.append(wait_polling(client, queue, p, activities=True))
            else:
                port = next(port for api, port in self.apis if api is p)
                waits.append(p.wait_port(port))
        await asyncio.gather(*waits)
        for p in procs:
            p.check_alive()

    def api(self) -> Api:
        return Api([port for _, port in self.apis])

    # ---- walks ---------------------------------------------------------------------

    async def login(self, api: Api, steps: Steps | None, customer: Customer) -> str:
        response = await api.call(
            steps,
            "login",
            "POST",
            "/v1/session",
            json={"user_id": customer.email, "password": PASSWORD},
        )
        return str(response.json()["access_token"])

    async def circle(
        self,
        api: Api,
        steps: Steps,
        customer: Customer,
        token: str | None = None,
        pause: float = 0.0,
    ) -> None:
        """start → consent → apply → status, as the guide's screens call them;
        ``pause`` seconds between the steps (a customer reading the screen)."""
        auth = self.auth(customer, token)
        started = await api.call(steps, "start", "POST", "/v1/journey", headers=auth)
        if started.json()["stage"] != "awaiting_consent":
            raise BenchError(f"start: stage {started.json()['stage']}")
        await asyncio.sleep(pause)
        await api.call(
            steps,
            "consent",
            "POST",
            "/v1/journey/consent",
            headers=auth,
            json={"agree": True, "terms_version": self.settings.circle_terms_version},
        )
        await asyncio.sleep(pause)
        await api.call(
            steps,
            "apply",
            "POST",
            "/v1/journey/applications",
            expect=(201,),
            headers=auth,
            json={"gateway_id": customer.gateway_id},
        )
        await asyncio.sleep(pause)
        status = await api.call(steps, "status", "GET", "/v1/journey", headers=auth)
        if status.json()["stage"] != "awaiting_points_signup":
            raise BenchError(f"status: stage {status.json()['stage']}")

    async def points_signup(self, api: Api, steps: Steps, customer: Customer, email: str) -> None:
        """The スマイルeポイント signup of an applied customer, from the mailed link to
        STEP6. Under another address than the account's, the holder confirms by the
        mailed link before 登録する."""
        sent = time.perf_counter()
        await api.call(
            steps,
            "signup request",
            "POST",
            "/v1/points/signups",
            expect=(202,),
            json={"email": email},
        )
        token = await self.mailbox.token(email, LINK_MAIL)
        steps.add("link mail arrived", sent, time.perf_counter() - sent)
        link = await api.call(steps, "link", "POST", "/v1/points/link", json={"token": token})
        if link.json()["state"] != "valid":
            raise BenchError(f"link: {link.json()['state']}")
        begun = await api.call(
            steps,
            "begin",
            "POST",
            "/v1/points/begin",
            json={"token": token, "service": "omron_monitoring"},
        )
        session = {"X-Signup-Session": begun.json()["session"]}
        for document in ("smile_e_point_terms", "smile_e_point_privacy"):
            await api.call(
                steps, "document", "GET", f"/v1/points/signup/documents/{document}", headers=session
            )
        await api.call(
            steps,
            "agreement",
            "POST",
            "/v1/points/signup/agreement",
            expect=(204,),
            headers=session,
            json={
                "agree": True,
                "service_terms_version": self.settings.points_terms_version,
                "privacy_policy_version": self.settings.points_privacy_version,
            },
        )
        await api.call(
            steps,
            "gateway",
            "POST",
            "/v1/points/signup/gateway",
            expect=(204,),
            headers=session,
            json={"gateway_id": customer.gateway_id, "pcs_serial": customer.pcs_serial},
        )
        await api.call(
            steps,
            "customer",
            "POST",
            "/v1/points/signup/customer",
            expect=(204,),
            headers=session,
            json=CUSTOMER_FORM,
        )
        view = await api.call(steps, "confirmation", "GET", "/v1/points/signup", headers=session)
        holder = view.json().get("holder_confirmation")
        if email != customer.email:
            if holder != "pending":
                raise BenchError(f"confirmation: holder_confirmation {holder}")
            confirm = await self.mailbox.token(customer.email, HOLDER_MAIL)
            await api.call(
                steps, "holder link", "POST", "/v1/holder-confirmation", json={"token": confirm}
            )
            await api.call(
                steps,
                "holder confirm",
                "POST",
                "/v1/holder-confirmation/confirm",
                json={"token": confirm},
            )
        elif holder not in (None, "not_needed"):
            raise BenchError(f"confirmation: holder_confirmation {holder}")
        await api.call(steps, "register", "POST", "/v1/points/signup/register", headers=session)


def product_env(
    stack: Stack, store_url: str, smtp_port: int, task_queue: str, mail_queue: str = ""
) -> tuple[dict[str, str], Settings]:
    """The processes' environment (config.py reads ``ECOKATSU_*``), with fresh secrets,
    and the same settings as the bench process sees them."""
    codec_key = base64.b64encode(secrets.token_bytes(32)).decode()
    values = {
        "ECOKATSU_ENV": "development",
        "DATABASE_URL": store_url,
        "ECOKATSU_TEMPORAL_ADDRESS": stack.temporal_address,
        "ECOKATSU_TASK_QUEUE": task_queue,
        "ECOKATSU_MAIL_TASK_QUEUE": mail_queue,
        "ECOKATSU_SMTP_HOST": "127.0.0.1",
        "ECOKATSU_SMTP_PORT": str(smtp_port),
        "ECOKATSU_SECRET_KEY": secrets.token_urlsafe(32),
        "ECOKATSU_SYSTEM_API_KEY": secrets.token_urlsafe(32),
        "ECOKATSU_SIGNUP_LINK_KEY": secrets.token_urlsafe(32),
        "ECOKATSU_CODEC_KEYS": json.dumps({"bench-1": codec_key}),
        "ECOKATSU_CODEC_KEY_ID": "bench-1",
        # Every customer of the bench comes from 127.0.0.1.
        "ECOKATSU_SIGNUP_REQUESTS_PER_HOUR": "1000000",
    }
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ECOKATSU_") and k != "DATABASE_URL"
    }
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    settings = Settings(
        env="development",
        database_url=store_url,
        temporal_address=stack.temporal_address,
        task_queue=task_queue,
        mail_task_queue=values["ECOKATSU_MAIL_TASK_QUEUE"],
        smtp_port=smtp_port,
        secret_key=values["ECOKATSU_SECRET_KEY"],
        codec_keys={"bench-1": codec_key},
        codec_key_id="bench-1",
    )
    return env, settings


async def start_product(
    stack: Stack, task_queue: str, workers: int = 1, apis: int = 1, mail_worker: bool = False
) -> Product:
    """Mail sink, migrated store, worker(s) and API(s) on the stack's dev server;
    ``mail_worker``: the mails on a task queue of their own, served by a worker process of
    their own (``worker.py --only mail``)."""
    smtp = stack.ports.take()
    store_url = f"sqlite:///{stack.workdir / 'store.sqlite3'}"
    mail_queue = f"{task_queue}-mail" if mail_worker else ""
    env, settings = product_env(stack, store_url, smtp, task_queue, mail_queue)
    stack.env = env
    maildir = stack.workdir / "mail"
    sink = stack.proc(
        "mailsink", python_argv("cli.py", "mailsink", "--port", str(smtp), "--dir", str(maildir))
    )
    sink.start()
    migrate = stack.proc("migrate", python_argv("cli.py", "migrate"))
    migrate.start()
    if migrate.popen is None or await asyncio.to_thread(migrate.popen.wait) != 0:
        raise BenchError(f"cli.py migrate failed:\n{migrate.log_text()[-2000:]}")
    engine = make_engine(store_url)
    product = Product(stack, settings, env, engine, Customers(engine), Mailbox(maildir))
    procs = [await product.add_worker() for _ in range(workers)]
    if mail_worker:
        procs.append(await product.add_mail_worker())
    procs += [(await product.add_api())[0] for _ in range(apis)]
    await sink.wait_port(smtp)
    await product.ready(procs)
    return product


@dataclass
class LoginFigures:
    logins: int
    concurrency: int
    seconds: float
    api_cpu_seconds: float  # of the API process while they ran
    cores: int
    steps: Steps

    @property
    def per_second(self) -> float:
        return self.logins / self.seconds

    @property
    def cpu_per_login(self) -> float:
        return self.api_cpu_seconds / self.logins


@dataclass
class BurstFigures:
    logins: int
    traffic_concurrency: int
    traffic: Steps
    burst_logins: Steps
    baseline: tuple[float, float]
    burst: tuple[float, float]


@dataclass
class ProductFigures:
    c1: Steps = field(default_factory=Steps)
    paced: Steps = field(default_factory=Steps)  # c=1 with a pause between the steps
    pages: Steps = field(default_factory=Steps)
    logins: LoginFigures | None = None
    journeys: JourneyRun | None = None
    burst: BurstFigures | None = None
    memory: dict[str, ProcStats] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase → process → cores
    scaled: JourneyRun | None = None
    scaled_memory: dict[str, ProcStats] = field(default_factory=dict)


@dataclass
class ProductSizes:
    warmup: int = 5
    login_c1: int = 20  # logins one at a time
    steps_c1: int = 100  # circle journeys one at a time (a sample of each step)
    paced_c1: int = 30  # the same at a customer's pace: `pace` seconds between the steps
    pace: float = 0.2
    signups_c1: int = 20  # points signups one at a time (every other one under another address)
    pages_c1: int = 20
    journeys: int = 100  # whole journeys at `concurrency`, login excluded
    concurrency: int = 20
    login_concurrency: int = 2 * (os.cpu_count() or 1)
    login_throughput: int = 40  # of the `journeys` customers, logged in `login_concurrency` at once
    burst_logins: int = 40
    burst_traffic: int = 5  # concurrent step traffic under the burst
    burst_baseline: float = 6.0  # seconds of traffic alone before the burst
    scale: bool = True
    blocks: int = 4  # the steps one at a time in this many blocks, alternating with the bare


async def settle(product: Product, say: Any) -> None:
    """Before a bare block: the product's mails out (said when they are not, in time)."""
    if not await product.mailbox.settled():
        say("product: mails still coming after 30 s; the bare block runs anyway")


def share(total: int, block: int, blocks: int) -> int:
    """Block ``block``'s part of ``total`` (the parts of all ``blocks`` add up to it)."""
    return total * (block + 1) // blocks - total * block // blocks


async def measure_product(
    product: Product, sizes: ProductSizes, say: Any, bare: BareBench | None = None
) -> ProductFigures:
    """The product's phases; with ``bare``, its steps one at a time alternate with the
    bare workflow's in ``sizes.blocks`` blocks, and the bare journeys at c run once they
    are done, before the product's."""
    if sizes.blocks < 1:
        raise BenchError(f"blocks must be 1 or more, not {sizes.blocks}")
    figures = ProductFigures()
    api = product.api()
    try:
        say("product: warm-up")
        warm = product.customers.take(sizes.warmup)
        for customer in warm[:2]:
            await product.login(api, None, customer)
        await run_pool(sizes.warmup, warm, lambda c: product.circle(api, Steps(), c))

        say(f"product: {sizes.login_c1} logins, one at a time")
        for customer in product.customers.take(sizes.login_c1):
            await product.login(api, figures.c1, customer)

        # The steps one at a time, in blocks alternating with the bare workflow's (each
        # bare block once the product's mails are out): the ratios' two sides meet the
        # machine in the same state, however its speed drifts during the run.
        applied: list[Customer] = []  # the circle journeys' customers, in order
        signups = min(sizes.signups_c1, sizes.steps_c1)  # each on an applied customer
        signed = 0
        for block in range(sizes.blocks):
            if bare is not None:
                await settle(product, say)
                await bare.one_step_block(block, share(bare.sizes.calls, block, sizes.blocks))
            fresh = product.customers.take(share(sizes.steps_c1, block, sizes.blocks))
            if fresh:
                say(f"product: {len(fresh)} circle journeys, one at a time")
            for customer in fresh:
                await product.circle(api, figures.c1, customer)
            paced = product.customers.take(share(sizes.paced_c1, block, sizes.blocks))
            if paced:
                say(f"product: {len(paced)} circle journeys, {sizes.pace:.1f} s between steps")
            for customer in paced:
                await product.circle(api, figures.paced, customer, pause=sizes.pace)
            applied += fresh
            n = share(signups, block, sizes.blocks)
            if n:
                say(f"product: {n} points signups, one at a time")
            for i in range(signed, signed + n):
                customer = applied[i]
                email = customer.email if i % 2 == 0 else f"family{i}.{customer.email}"
                await product.points_signup(api, figures.c1, customer, email)
            signed += n
        if bare is not None:
            await settle(product, say)
            await bare.concurrent()
            bare.stop()  # idle from here on, but not beside the product's own phases

        for path in ("/site/login", "/points/signup"):
            for _ in range(sizes.pages_c1):
                await api.call(figures.pages, path, "GET", path)

        group = product.customers.take(sizes.journeys)
        # The first ones log in through the API (the login throughput); the others' tokens
        # are signed by the bench (their login would only make the run longer).
        logging_in = group[: sizes.login_throughput]
        say(f"product: {len(logging_in)} logins, {sizes.login_concurrency} at once")
        tokens = {c.account_id: product.tokens.issue(c.account_id) for c in group}
        api_proc = product.apis[0][0]
        cpu_before = api_proc.stats()
        logins = Steps()

        async def log_in(customer: Customer) -> None:
            tokens[customer.account_id] = await product.login(api, logins, customer)

        seconds = await run_pool(sizes.login_concurrency, logging_in, log_in)
        cpu_after = api_proc.stats()
        if cpu_before is None or cpu_after is None:
            raise BenchError("the API process is gone")
        figures.logins = LoginFigures(
            len(logging_in),
            sizes.login_concurrency,
            seconds,
            cpu_after.cpu_seconds - cpu_before.cpu_seconds,
            os.cpu_count() or 1,
            logins,
        )

        say(f"product: {len(group)} journeys, {sizes.concurrency} at once (logged in)")
        figures.journeys = await journeys_at(
            product, api, group, sizes.concurrency, figures, "1 worker, 1 API", tokens
        )

        say(f"product: a burst of {sizes.burst_logins} logins under step traffic")
        figures.burst = await login_burst(product, api, sizes, group)
        figures.memory = product.stack.stats()
    finally:
        await api.aclose()

    if sizes.scale:
        say("product: a second worker and a second API")
        procs = [await product.add_worker(), (await product.add_api())[0]]
        await product.ready(procs)
        api = product.api()
        try:
            warm = product.customers.take(2 * sizes.warmup)
            await run_pool(sizes.warmup, warm, lambda c: product.circle(api, Steps(), c))
            group = product.customers.take(sizes.journeys)
            say(f"product: {len(group)} journeys, {sizes.concurrency} at once, 2 workers, 2 APIs")
            figures.scaled = await journeys_at(
                product, api, group, sizes.concurrency, figures, "2 workers, 2 APIs", None
            )
            figures.scaled_memory = product.stack.stats()
        finally:
            await api.aclose()
    return figures


async def journeys_at(
    product: Product,
    api: Api,
    group: list[Customer],
    concurrency: int,
    figures: ProductFigures,
    phase: str,
    tokens: dict[str, str] | None,
) -> JourneyRun:
    steps = Steps()
    meter = CpuMeter(product.stack)

    async def walk(customer: Customer) -> None:
        token = tokens[customer.account_id] if tokens else None
        await product.circle(api, steps, customer, token)

    seconds = await run_pool(concurrency, group, walk)
    figures.cpu[f"product journeys c={concurrency}, {phase}"] = meter.cores()
    return JourneyRun(len(group), concurrency, seconds, steps)


async def login_burst(
    product: Product, api: Api, sizes: ProductSizes, logged_in: list[Customer]
) -> BurstFigures:
    """Step traffic (whole journeys, ``burst_traffic`` at once) alone for a while, then
    with ``burst_logins`` logins sent at once; the steps' latencies in both windows."""
    traffic = Steps()
    stop = asyncio.Event()
    # Enough fresh customers for the traffic never to run dry (tokens signed, no login).
    pool = product.customers.take(sizes.burst_traffic * 150)

    async def loop() -> None:
        while not stop.is_set() and pool:
            await product.circle(api, traffic, pool.pop())

    burst_logins = Steps()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(sizes.burst_traffic):
            tasks.create_task(loop())
        started = time.perf_counter()
        await asyncio.sleep(sizes.burst_baseline)
        burst_start = time.perf_counter()
        who = (logged_in * (1 + sizes.burst_logins // max(1, len(logged_in))))[: sizes.burst_logins]
        await asyncio.gather(*(product.login(api, burst_logins, c) for c in who))
        burst_end = time.perf_counter()
        stop.set()
    if not pool:
        raise BenchError("the step traffic ran out of customers before the burst ended")
    # The first second of traffic warms up the runners; it counts in neither window.
    return BurstFigures(
        sizes.burst_logins,
        sizes.burst_traffic,
        traffic,
        burst_logins,
        (started + 1.0, burst_start),
        (burst_start, burst_end),
    )
