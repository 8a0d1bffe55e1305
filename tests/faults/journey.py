"""One customer, driven through the HTTP API from announcement to ``enrolled``.

The customer behaves like a person at a screen: each form is one request (retried by the
client on 503 and connection errors, with the same ``Idempotency-Key``); after any other
refusal the customer reloads (reads the journey or the signup again) and carries on from
what the screen shows. The signup link is read from the delivered mail; before using one,
the customer opens every link mailed to them, which must each be the valid one or say
``link_replaced``. Every loop is bounded by rounds and by the scenario's deadline.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.ids import enrollment_workflow_id
from store.engine import make_engine
from store.tables import Account
from tests.faults.client import Answer, RecordingClient
from tests.faults.mailbox import Mailbox

SYSTEM_KEY = "faults-system-key"
ACCOUNT_PASSWORD = "Faults-Account-2026"
POINTS_PASSWORD = "Faults-Smile-2026!"
CUSTOMER: dict[str, Any] = {
    "name": "試験 太郎",
    "furigana": "しけん たろう",
    "address": {
        "postal_code": "530-0001",
        "prefecture": "大阪府",
        "address": "大阪市北区梅田1-2-3",
    },
    "phone": ["06", "1234", "5678"],
    "password": POINTS_PASSWORD,
    "password_confirmation": POINTS_PASSWORD,
}
TERMS_VERSIONS = {"service_terms_version": "2022-07-01", "privacy_policy_version": "2022-07-01"}
DOCUMENTS = ("smile_e_point_terms", "smile_e_point_privacy")
# Link states that are a dead link in a customer's hand while the signup is pending.
DEAD_STATES = ("link_unknown", "link_expired", "signup_closed")


def random_id(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(length))


@dataclass
class LinkSeen:
    """A signup link found in a delivered mail, and every state it was seen in."""

    token: str
    journey: int
    mail_file: str
    message_id: str
    arrived: float
    observations: list[tuple[float, str, str]] = field(default_factory=list)  # at, state, who
    used: bool = False  # /begin answered 200 with it

    def dead_observations(self) -> list[tuple[float, str, str]]:
        return [o for o in self.observations if o[1] in DEAD_STATES]


@dataclass
class Shared:
    """What every journey of one scenario shares."""

    api: RecordingClient
    mailbox: Mailbox
    temporal: Client
    database_url: str
    deadline: float  # monotonic
    clock: float  # monotonic start of the scenario
    links: dict[str, LinkSeen] = field(default_factory=dict)
    retry_conflicts: list[str] = field(default_factory=list)  # evidence lines
    resend_cooldown: float = 2.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def now(self) -> float:
        return round(time.monotonic() - self.clock, 2)

    def account_id(self, email: str) -> str | None:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                account = session.exec(select(Account).where(Account.email == email)).first()
                return account.id if account else None
        finally:
            engine.dispose()

    async def workflow_exists(self, account_id: str) -> bool | None:
        """None when Temporal could not say (it may be down)."""
        try:
            await self.temporal.get_workflow_handle(enrollment_workflow_id(account_id)).describe()
            return True
        except RPCError as err:
            return False if err.status == RPCStatusCode.NOT_FOUND else None

    async def open_link(self, journey: int, token: str, who: str) -> str | None:
        """POST /v1/points/link; records the state seen."""
        answer = await self.api.call(
            journey, "link", "POST", "/v1/points/link", json={"token": token}
        )
        if answer.status != 200 or not isinstance(answer.body, dict):
            return None
        state = str(answer.body.get("state"))
        seen = self.links.get(token)
        if seen is not None:
            seen.observations.append((self.now(), state, who))
        return state

    def register_mails(self) -> None:
        for mail in self.mailbox.scan():
            if mail.kind != "signup_link":
                continue
            for token in mail.tokens:
                if token not in self.links:
                    journey = (
                        int(mail.to.split("+", 1)[1].split("@", 1)[0]) if "+" in mail.to else -1
                    )
                    self.links[token] = LinkSeen(
                        token, journey, mail.file, mail.message_id, mail.arrived
                    )


@dataclass
class Journey:
    index: int
    shared: Shared
    rng: random.Random
    resends: bool  # this customer presses 送信する again after the first link arrives
    email: str = ""
    gateway_id: str = ""
    pcs_serial: str = ""
    account_id: str | None = None
    auth: dict[str, str] = field(default_factory=dict)
    stage: str | None = None
    finished: bool = False
    lost: bool = False  # announced, but no journey started for the account
    signup_done: bool = False
    session: dict[str, str] | None = None
    view: dict[str, Any] | None = None  # the signup as the front end believes it is
    link_requests: int = 0
    tokens_tried: set[str] = field(default_factory=set)
    terms_version: str | None = None
    notes: list[str] = field(default_factory=list)
    last_step: str = ""

    def __post_init__(self) -> None:
        self.email = f"faults-{self.shared.run_id}+{self.index}@example.com"
        self.gateway_id = random_id(12, self.rng)
        self.pcs_serial = random_id(8, self.rng)

    # ---- plumbing ------------------------------------------------------------------

    @property
    def api(self) -> RecordingClient:
        return self.shared.api

    def out_of_time(self) -> bool:
        return time.monotonic() > self.shared.deadline

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))

    async def call(self, step: str, method: str, path: str, **kwargs: Any) -> Answer:
        self.last_step = step
        budget = max(1.0, min(60.0, self.shared.deadline - time.monotonic()))
        answer = await self.api.call(self.index, step, method, path, budget=budget, **kwargs)
        if answer.retried_after_doubt and answer.status is not None and 400 <= answer.status < 500:
            # The retry was refused because of what its own first attempt did.
            chain = " → ".join(a.outcome for a in answer.attempts)
            self.shared.retry_conflicts.append(
                f"journey {self.index} {method} {path} (key {answer.attempts[0].key}): "
                f"{chain} {answer.code}"
            )
        return answer

    # ---- the journey ---------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as exc:  # a bug in the driver must not hide the others' results
            self.notes.append(f"driver error: {type(exc).__name__}: {exc}")

    async def _run(self) -> None:
        if not await self.announce():
            return
        await self.await_invitation()
        await self.think()
        if not await self.login():
            return
        started = await self.call("start", "POST", "/v1/journey", headers=self.auth)
        self.stage = _stage(started)
        # The screen moves on with each answer; after anything else the customer reloads.
        for _ in range(80):
            if self.out_of_time():
                return
            if self.stage is None:
                answer = await self.call("status", "GET", "/v1/journey", headers=self.auth)
                if answer.code == "journey_not_found":
                    answer = await self.call("start", "POST", "/v1/journey", headers=self.auth)
                self.stage = _stage(answer)
                if self.stage is None:
                    await asyncio.sleep(1)
                    continue
            if self.stage == "enrolled":
                self.finished = True
                return
            if self.stage == "checking":
                await asyncio.sleep(0.3)
                self.stage = None
            elif self.stage == "awaiting_consent":
                await self.think()
                self.stage = await self.consent()
            elif self.stage == "awaiting_application":
                await self.think()
                applied = await self.call(
                    "apply",
                    "POST",
                    "/v1/journey/applications",
                    headers=self.auth,
                    json={"gateway_id": self.gateway_id},
                )
                self.stage = "awaiting_points_signup" if applied.status == 201 else None
            elif self.stage == "awaiting_points_signup":
                if not self.signup_done:
                    await self.signup()
                if self.signup_done:
                    await asyncio.sleep(0.5)  # registered: the journey hears it in a moment
                self.stage = None
            else:
                self.notes.append(f"journey ended as {self.stage}")
                return

    async def announce(self) -> bool:
        body = {
            "email": self.email,
            "password": ACCOUNT_PASSWORD,
            "display_name": f"試験 {self.index}号",
            "holder_type": "individual",
            "gateways": [
                {
                    "gateway_id": self.gateway_id,
                    "pcs_serial": self.pcs_serial,
                    "model": "KPBP-A",
                    "pv_unit_in_use": True,
                    "battery_unit_in_use": True,
                }
            ],
        }
        headers = {"X-System-Key": SYSTEM_KEY}
        # The monitoring system resends a failed announcement (a few times, then gives up).
        for _ in range(4):
            answer = await self.call(
                "announce", "POST", "/v1/system/accounts", json=body, headers=headers
            )
            # 201 started, 200 the same announcement again (its journey runs), 202 recorded
            # with the start pending (a worker starts it): all three mean "nothing to resend".
            if answer.status in (200, 201, 202) and isinstance(answer.body, dict):
                self.account_id = str(answer.body["account_id"])
                return True
            if answer.code == "account_exists":
                return True  # an earlier attempt went through: the account is there
            if self.out_of_time():
                break
            await asyncio.sleep(2)
        self.notes.append("announcement never accepted")
        return False

    async def await_invitation(self) -> None:
        """The customer follows the invitation mail. Its journey must exist without the
        customer's help: no invitation and no workflow within 45 s is a lost journey."""
        deadline = time.monotonic() + 45
        checked = 0.0
        while time.monotonic() < deadline and not self.out_of_time():
            if self.shared.mailbox.for_address(self.email, "invitation"):
                return
            if time.monotonic() - checked > 5:
                checked = time.monotonic()
                account_id = self.account_id or await asyncio.to_thread(
                    self.shared.account_id, self.email
                )
                if account_id and await self.shared.workflow_exists(account_id):
                    return
            await asyncio.sleep(0.5)
        account_id = self.account_id or await asyncio.to_thread(self.shared.account_id, self.email)
        if account_id is None or await self.shared.workflow_exists(account_id) is not True:
            self.lost = True
            self.notes.append("no journey and no invitation 45 s after the announcement")

    async def login(self) -> bool:
        for _ in range(5):
            answer = await self.call(
                "login",
                "POST",
                "/v1/session",
                json={"user_id": self.email, "password": ACCOUNT_PASSWORD},
            )
            if answer.status == 200 and isinstance(answer.body, dict):
                self.auth = {"Authorization": f"Bearer {answer.body['access_token']}"}
                return True
            if self.out_of_time():
                break
            await asyncio.sleep(1)
        self.notes.append("could not log in")
        return False

    async def consent(self) -> str | None:
        if self.terms_version is None:
            terms = await self.call("terms", "GET", "/v1/terms")
            if terms.status != 200 or not isinstance(terms.body, dict):
                return None
            self.terms_version = str(terms.body["version"])
        return _stage(
            await self.call(
                "consent",
                "POST",
                "/v1/journey/consent",
                headers=self.auth,
                json={"agree": True, "terms_version": self.terms_version},
            )
        )

    # ---- the points signup ---------------------------------------------------------

    async def signup(self) -> None:
        """The points signup, from the link request to 登録する (bounded rounds)."""
        for _ in range(40):
            if self.signup_done or self.out_of_time():
                return
            if self.session is None:
                await self.obtain_session()
            else:
                await self.think()
                await self.signup_step()

    async def request_link(self) -> None:
        self.link_requests += 1
        await self.call("request_link", "POST", "/v1/points/signups", json={"email": self.email})

    def _tokens(self) -> list[str]:
        self.shared.register_mails()
        return [
            t for m in self.shared.mailbox.for_address(self.email, "signup_link") for t in m.tokens
        ]

    async def _wait_for_new_link(self, known: set[str], timeout: float) -> bool:
        deadline = min(time.monotonic() + timeout, self.shared.deadline)
        while time.monotonic() < deadline:
            if set(self._tokens()) - known:
                return True
            await asyncio.sleep(0.5)
        return False

    async def obtain_session(self) -> None:
        known = set(self._tokens())
        needs_request = self.link_requests == 0 or not (known - self.tokens_tried)
        if needs_request:
            if self.link_requests >= 5:
                self.notes.append("gave up asking for links")
                await asyncio.sleep(2)
                return
            await self.request_link()
            # No mail within 75 s: the customer asks again (a resend kills the old link).
            if not await self._wait_for_new_link(known, 75):
                return
            if self.resends and self.link_requests == 1:
                # The customer presses 送信する again once the cooldown allows: the first
                # link must then say link_replaced, the second one work.
                await asyncio.sleep(self.shared.resend_cooldown + self.rng.uniform(0.5, 2))
                known = set(self._tokens())
                await self.request_link()
                await self._wait_for_new_link(known, 75)
        await self.think()
        tokens = self._tokens()
        states: dict[str, str | None] = {}
        for token in tokens:  # the customer opens every link mailed to them
            states[token] = await self.shared.open_link(self.index, token, "customer")
        if "signup_completed" in states.values():
            self.signup_done = True
            return
        valid = [t for t in tokens if states[t] == "valid"]
        if not valid:
            self.notes.append(
                f"no valid link among {len(tokens)}: {sorted(set(map(str, states.values())))}"
            )
            self.tokens_tried.update(tokens)  # next round asks for a new one
            await asyncio.sleep(1)
            return
        token = valid[-1]
        self.tokens_tried.add(token)
        answer = await self.call(
            "begin",
            "POST",
            "/v1/points/begin",
            json={"token": token, "service": "omron_monitoring"},
        )
        if answer.status == 200 and isinstance(answer.body, dict):
            self.session = {"X-Signup-Session": str(answer.body["session"])}
            self.view = None
            if token in self.shared.links:
                self.shared.links[token].used = True
        elif answer.code == "signup_completed":
            self.signup_done = True

    async def signup_step(self) -> None:
        """One form of STEP2–5. The front end moves on with each success and reloads the
        confirmation view (GET /v1/points/signup) only after a refusal."""
        assert self.session is not None
        if self.view is None:
            view = await self.call("confirmation", "GET", "/v1/points/signup", headers=self.session)
            if not self._follow(view):
                return
            if view.status != 200 or not isinstance(view.body, dict):
                await asyncio.sleep(1)
                return
            if view.body.get("status") == "registered":
                self.signup_done = True
                return
            self.view = view.body
        presented = set(self.view.get("documents_presented") or [])
        answer: Answer
        done: dict[str, Any]
        if missing := [d for d in DOCUMENTS if d not in presented]:
            answer = await self.call(
                "document",
                "GET",
                f"/v1/points/signup/documents/{missing[0]}",
                headers=self.session,
            )
            done = {"documents_presented": [*presented, missing[0]]}
        elif not self.view.get("agreed"):
            answer = await self.call(
                "agreement",
                "POST",
                "/v1/points/signup/agreement",
                headers=self.session,
                json={"agree": True, **TERMS_VERSIONS},
            )
            done = {"agreed": True}
        elif not self.view.get("gateway_id"):
            answer = await self.call(
                "gateway",
                "POST",
                "/v1/points/signup/gateway",
                headers=self.session,
                json={"gateway_id": self.gateway_id, "pcs_serial": self.pcs_serial},
            )
            done = {"gateway_id": self.gateway_id}
        elif not self.view.get("info") or not self.view.get("password"):
            answer = await self.call(
                "customer",
                "POST",
                "/v1/points/signup/customer",
                headers=self.session,
                json=CUSTOMER,
            )
            done = {"info": "entered", "password": "entered"}
        else:
            answer = await self.call(
                "register", "POST", "/v1/points/signup/register", headers=self.session
            )
            if answer.status == 200:
                self.signup_done = True
            done = {}
        if answer.ok:
            self.view = {**self.view, **done}
        else:
            self.view = None  # reload before the next form
            self._follow(answer)

    def _follow(self, answer: Answer) -> bool:
        """What a refusal of the session means; False when the session is over."""
        if answer.code == "session_invalid":
            self.session = None
            return False
        if answer.code == "signup_completed":
            self.signup_done = True
            return False
        return True


def _stage(answer: Answer) -> str | None:
    if answer.ok and isinstance(answer.body, dict) and answer.body.get("stage"):
        return str(answer.body["stage"])
    return None
