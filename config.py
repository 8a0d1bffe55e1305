"""Settings, read once at the edges (worker, API, CLI) from ``ECOKATSU_*`` variables.

Policies are nested models whose defaults live in one place, the model itself
(``ReminderPolicy``, ``SignupPolicy``, ``QuietHours``, ``SupportContact``,
``StuckPolicy``); a variable sets one field of one of them: ``ECOKATSU_SIGNUP_LINK_TTL`` is
``signup.link_ttl``, ``ECOKATSU_QUIET_START`` is ``quiet.start`` (the first ``_`` after the
prefix nests).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.enrollment import ReminderPolicy
from domain.jst import QuietHours
from domain.operators import StuckPolicy
from domain.signup import SignupPolicy
from domain.terms import TermsDocument

ROOT = Path(__file__).resolve().parent

# Secrets whose default values are published (in this repository): fine on a laptop, an
# open door anywhere else. Outside development the API, worker and CLI refuse them.
DEV_SECRET_KEY = "dev-only-change-me"  # noqa: S105 (published on purpose, refused outside dev)
DEV_SYSTEM_API_KEY = "dev-system-key"
DEV_CODEC_KEY = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="
DEV_SIGNUP_LINK_KEY = "dev-only-signup-link-key"
# The docker-compose file's former fallbacks were published too.
PUBLISHED_SECRETS = frozenset(
    {
        DEV_SECRET_KEY,
        DEV_SYSTEM_API_KEY,
        DEV_CODEC_KEY,
        DEV_SIGNUP_LINK_KEY,
        "local-only-change-me",
        "local-only-system-key",
        "bG9jYWwtb25seS1rZXktZG8tbm90LXVzZS1pdC0wMSE=",
    }
)


class UnsafeSecrets(RuntimeError):
    """Outside development, a secret still holds a published default (or is empty)."""


class SupportContact(BaseModel):
    """The circle's support desk, printed at the foot of every circle mail."""

    phone: str = "0120-066-825"
    hours: str = "平日 9:00～17:00 (土日祝、当社休日を除く)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ECOKATSU_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
        # ECOKATSU_SIGNUP_LINK_TTL → signup.link_ttl: the documented names stay valid.
        # Flat fields (ECOKATSU_SMTP_HOST, ECOKATSU_SIGNUP_REQUESTS_PER_HOUR) are read
        # by their whole name as before.
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    # "development" accepts the published default secrets (with a loud warning); anything
    # else refuses to start with them. The default is the safe one: `make run` and the
    # tests say "development" explicitly, a deployment sets its own secrets.
    env: Literal["development", "production"] = "production"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "eco-katsu"
    # Mails (rendering, the mail ledger, SMTP) as activities on a task queue of their own
    # (e.g. "eco-katsu-mail"), served by `python worker.py --only mail` in a process of
    # its own: SMTP then never competes with the workflows for a worker's CPU (README,
    # Benchmarks: no gain on 2 cores). Empty: the mails go on task_queue, as before. A
    # plain `python worker.py` serves both queues; every worker also serves mails on
    # task_queue, for journeys started before this was set. One-way: journeys carry the
    # queue for as long as they live, so once set, keep it served (API and workers alike).
    mail_task_queue: str = ""
    # Payload encryption: key ID → base64 of 32 random bytes; the current key seals.
    # The default is for a laptop only: set your own in every other place.
    codec_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {"dev-1": SecretStr(DEV_CODEC_KEY)}
    )
    codec_key_id: str = "dev-1"
    # The codec server (POST /codec/decode, /codec/encode) for the Temporal UI and CLI:
    # off unless a token is set (sent as "Authorization: Bearer …"), or the local UI mode
    # is on, which accepts tokenless requests from loopback clients only (make run).
    codec_server_token: SecretStr | None = None
    codec_server_local_ui: bool = False
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8233", "http://localhost:8233"]
    )
    # How long the API waits for a workflow to answer an update or query before 503.
    workflow_answer_timeout: timedelta = timedelta(seconds=15)
    # How long the API waits for the Temporal server itself (a start, a list) before it
    # answers 503, or 202 for an announcement whose start is recorded (the client's own
    # retries would take about 10 s to give up).
    temporal_call_timeout: timedelta = timedelta(seconds=5)
    # The outbox of journey starts: how often each worker's reconciler looks for pending
    # starts, and how long a claimed start is left to its claimant before another may try.
    journey_start_interval: timedelta = timedelta(seconds=5)
    journey_start_lease: timedelta = timedelta(seconds=60)
    # How long the API tries to reach the Temporal server per attempt: at start-up it
    # tries once and starts anyway (routes answer 503 until a later attempt succeeds).
    temporal_connect_timeout: timedelta = timedelta(seconds=3)
    # Request bodies above this size are refused with 413 before they are parsed.
    max_request_body_bytes: int = 64 * 1024

    # Store
    database_url: str = Field(
        default=f"sqlite:///{ROOT / 'var' / 'eco-katsu.sqlite3'}",
        validation_alias="DATABASE_URL",
    )

    # Mail
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool = False
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "遠隔モニタリングサービス <noreply@eco-katsu.example>"
    # The スマイルeポイント mails' sender, as the guide shows it (p. 10: allow @nttse.com).
    points_mail_from: str = "株式会社NTTスマイルエナジー <noreply_cr@nttse.com>"
    mail_domain: str = "eco-katsu.example"

    # Addresses shown to customers
    monitoring_site_url: str = "https://regist.kp-net.com/"
    points_signup_url: str = "https://smile-e-pt.eco-megane.jp/signup"

    # スマイルeポイント signup: the link in the mail is <registration url>#<token> (a
    # fragment never reaches a server, so the token is in no access log).
    points_registration_url: str = "https://smile-e-pt.eco-megane.jp/registration"
    points_login_url: str = "https://smile-e-pt.eco-megane.jp/login"
    # the member's change-of-e-mail confirmation page; the link is this #<token>
    points_email_change_url: str = "https://smile-e-pt.eco-megane.jp/email-change"
    points_inquiry_url: str = "https://smile-e-pt.eco-megane.jp/inquiry"
    points_terms_version: str = "2022-07-01"
    points_terms_file: Path = ROOT / "terms" / "smile-e-point-terms.ja.txt"
    points_terms_url: str = "https://www.eco-megane.jp/smile-e-pt_terms_of_service"
    points_privacy_version: str = "2022-07-01"
    points_privacy_file: Path = ROOT / "terms" / "smile-e-point-privacy.ja.txt"
    points_privacy_url: str = "https://www.eco-megane.jp/smile-e-pt_privacy"
    signup: SignupPolicy = Field(default_factory=SignupPolicy)
    # The server key signup link tokens are derived with (HMAC over signup, link number
    # and a stored salt): a retried mail carries the same link, and the store holds
    # nothing secret. Changing it makes links not yet mailed unmailable (flagged for an
    # operator); links already mailed keep working (they are looked up by hash).
    signup_link_key: SecretStr = Field(default=SecretStr(DEV_SIGNUP_LINK_KEY))
    # Mail-sending requests per address and per client address, per hour (API; counted
    # in the store, so shared by every API instance).
    signup_requests_per_hour: int = 10
    # "Already registered" mails per address and period: a member's address entered again
    # and again is told once, not once per request.
    signup_member_notice_cap: int = 1
    signup_member_notice_period: timedelta = timedelta(days=1)
    # A signup request is handed to its workflow right after the answer; one whose
    # hand-over failed is taken again by any API instance once this lease has run out.
    signup_request_lease: timedelta = timedelta(seconds=30)
    # The limits of STEP3 and the holder's confirmation are ``signup.gateway_tries`` …
    # ``signup.holder_asks_per_gateway_per_day`` (domain/signup.py SignupPolicy).
    # The holder's confirm page; the mailed link is this #<token> (never in a log).
    holder_confirmation_url: str = "https://regist.kp-net.com/points-confirmation"

    # Circle member terms (a new version needs a new consent)
    circle_terms_version: str = "2025-03-26"
    circle_terms_file: Path = ROOT / "terms" / "circle-member-terms.ja.txt"
    circle_terms_url: str = (
        "https://socialsolution.omron.com/jp/ja/products_service/energy/eco_katau/"
    )

    # Reminders (journey and signup) and the support desk the circle mails name
    reminder: ReminderPolicy = Field(default_factory=ReminderPolicy)
    quiet: QuietHours = Field(default_factory=QuietHours)
    support: SupportContact = Field(default_factory=SupportContact)
    # When a journey or signup is stuck, per stage (ECOKATSU_STUCK_AWAITING_CONSENT_AFTER …)
    stuck: StuckPolicy = Field(default_factory=StuckPolicy)

    # API
    secret_key: SecretStr = Field(default=SecretStr(DEV_SECRET_KEY))
    session_max_age: timedelta = timedelta(hours=12)
    # /docs and /openapi.json (turn off where the schema should not be public).
    api_docs: bool = True
    # Send HSTS on every answer (TLS terminated by a proxy that sends no
    # X-Forwarded-Proto); with the header, or TLS to us directly, it is sent anyway.
    hsts: bool = False
    # Login throttling (in the store, shared by every API instance): this many failures
    # within the window lock the user ID, or the client address, for the lockout. A locked
    # key is refused (429) before any password is hashed, even with the right password.
    login_failures_per_account: int = 5
    login_failures_per_client: int = 30
    login_failure_window: timedelta = timedelta(minutes=15)
    login_lockout: timedelta = timedelta(minutes=15)
    system_api_key: SecretStr = Field(default=SecretStr(DEV_SYSTEM_API_KEY))
    # An operator's session after a password login (POST /v1/operator/session).
    operator_session_max_age: timedelta = timedelta(hours=8)

    # Metrics (Prometheus). The API serves its own at /metrics. The worker serves its
    # activity counters (mails, links, registrations…) on worker_metrics_port and the
    # Temporal SDK's metrics (and the workflows' stage metrics) on temporal_metrics_port;
    # 0 turns either off.
    # The worker, chosen by measurement (README, Benchmarks): workflows kept in memory
    # between their tasks (0.3-0.4 MiB each here, its sandbox included; an evicted one
    # replays its history on its next task), and how long a stopping worker lets its
    # activities finish (a mail in flight is sent once, not cancelled and sent again by
    # the next worker).
    worker_max_cached_workflows: int = 350
    # Activities and local activities run on the worker's threads (one each): their sum
    # is the thread pool, kept within the store's connection pool (10 + 30 overflow).
    worker_max_concurrent_activities: int = 16
    worker_max_concurrent_local_activities: int = 16
    worker_max_concurrent_workflow_tasks: int = 50
    worker_graceful_shutdown: timedelta = timedelta(seconds=10)
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464
    temporal_metrics_port: int = 9465

    def published_secrets(self) -> list[str]:
        """The variables whose secret is a published default or empty (names only)."""
        named: list[tuple[str, SecretStr]] = [
            ("ECOKATSU_SECRET_KEY", self.secret_key),
            ("ECOKATSU_SYSTEM_API_KEY", self.system_api_key),
            ("ECOKATSU_SIGNUP_LINK_KEY", self.signup_link_key),
        ]
        # The codec server token is optional: unset or empty turns the token mode off.
        token = self.codec_server_token
        if token is not None and token.get_secret_value() in PUBLISHED_SECRETS:
            named.append(("ECOKATSU_CODEC_SERVER_TOKEN", token))
        named += [(f"ECOKATSU_CODEC_KEYS[{k}]", v) for k, v in self.codec_keys.items()]
        found = []
        for name, secret in named:
            value = secret.get_secret_value()
            if not value.strip() or value in PUBLISHED_SECRETS:
                found.append(name)
        return found

    def check_secrets(self, component: str) -> None:
        """Refuse to start with published secrets outside development; warn loudly in it.

        Called by the API, the worker and the CLI before they do anything else.
        """
        found = self.published_secrets()
        if not found:
            return
        names = ", ".join(found)
        if self.env != "development":
            raise UnsafeSecrets(
                f"{component} refuses to start: {names} hold(s) a published default or is "
                "empty. Set your own secrets (or ECOKATSU_ENV=development on a laptop)."
            )
        logging.getLogger("ecokatsu.config").warning(
            "\n%s\n!! %s is using the PUBLISHED DEFAULT secrets %s.\n"
            "!! Development only (ECOKATSU_ENV=development): anyone can read them.\n%s",
            "!" * 78,
            component,
            names,
            "!" * 78,
        )

    # Web front end (api/web): the development mail inbox page (/dev/mail) lists the .eml
    # files of this directory; unset (production), the page does not exist. `make run`
    # sets it to var/mail and points the mailed links at the local pages (Procfile).
    web_dev_mail_dir: Path | None = None

    def codec_key_bytes(self) -> dict[str, bytes]:
        return {k: base64.b64decode(v.get_secret_value()) for k, v in self.codec_keys.items()}

    @property
    def mail_queue(self) -> str | None:
        """The mail task queue a workflow's input carries (None: the workflow's own)."""
        return self.mail_task_queue or None

    def circle_terms(self) -> TermsDocument:
        return _document(
            "omron_circle_member_terms",
            self.circle_terms_version,
            self.circle_terms_file,
            self.circle_terms_url,
        )

    def points_terms(self) -> TermsDocument:
        return _document(
            "smile_e_point_terms",
            self.points_terms_version,
            self.points_terms_file,
            self.points_terms_url,
        )

    def points_privacy(self) -> TermsDocument:
        return _document(
            "smile_e_point_privacy",
            self.points_privacy_version,
            self.points_privacy_file,
            self.points_privacy_url,
        )

    def holder_token_key(self) -> bytes:
        """The key the holder's confirmation tokens are derived with: from the secret key,
        under a label of its own (rotating the secret key kills unanswered links)."""
        secret = self.secret_key.get_secret_value().encode()
        return hashlib.sha256(b"eco-katsu holder confirmation\0" + secret).digest()


@lru_cache
def document_text(path: Path) -> str:
    """A terms document's text, read once per process (it changes only with a release)."""
    return path.read_text(encoding="utf-8")


def _document(document: str, version: str, path: Path, url: str) -> TermsDocument:
    return TermsDocument(
        document=document,
        version=version,
        content_sha256=hashlib.sha256(document_text(path).encode("utf-8")).hexdigest(),
        url=url,
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
