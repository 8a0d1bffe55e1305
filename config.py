"""Settings, read once at the edges (worker, API, CLI) from ``ECOKATSU_*`` variables."""

from __future__ import annotations

import base64
import hashlib
from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.enrollment import ReminderPolicy
from domain.signup import SignupPolicy
from domain.terms import TermsDocument

ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ECOKATSU_", env_file=None, extra="ignore", populate_by_name=True
    )

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "eco-katsu"
    # Payload encryption: key ID → base64 of 32 random bytes; the current key seals.
    # The default is for a laptop only: set your own in every other place.
    codec_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {"dev-1": SecretStr("ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE=")}
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
    mail_domain: str = "eco-katsu.example"

    # Addresses shown to customers
    monitoring_site_url: str = "https://regist.kp-net.com/"
    points_signup_url: str = "https://smile-e-pt.eco-megane.jp/signup"

    # スマイルeポイント signup: the link in the mail is <registration url>#<token> (a
    # fragment never reaches a server, so the token is in no access log).
    points_registration_url: str = "https://smile-e-pt.eco-megane.jp/registration"
    points_login_url: str = "https://smile-e-pt.eco-megane.jp/login"
    points_inquiry_url: str = "https://smile-e-pt.eco-megane.jp/inquiry"
    points_terms_version: str = "2022-07-01"
    points_terms_file: Path = ROOT / "terms" / "smile-e-point-terms.ja.txt"
    points_terms_url: str = "https://www.eco-megane.jp/smile-e-pt_terms_of_service"
    points_privacy_version: str = "2022-07-01"
    points_privacy_file: Path = ROOT / "terms" / "smile-e-point-privacy.ja.txt"
    points_privacy_url: str = "https://www.eco-megane.jp/smile-e-pt_privacy"
    # The server key signup link tokens are derived with (HMAC over signup, link number
    # and a stored salt): a retried mail carries the same link, and the store holds
    # nothing secret. Changing it makes links not yet mailed unmailable (flagged for an
    # operator); links already mailed keep working (they are looked up by hash).
    signup_link_key: SecretStr = Field(default=SecretStr("dev-only-signup-link-key"))
    signup_link_ttl: timedelta = timedelta(hours=24)
    signup_resend_cooldown: timedelta = timedelta(minutes=1)
    signup_resend_daily_cap: int = 5
    signup_idle_reminder_after: timedelta = timedelta(days=2)
    signup_abandon_after: timedelta = timedelta(days=7)
    # Mail-sending requests per address and per client address, per hour (API).
    signup_requests_per_hour: int = 10

    # Circle member terms (a new version needs a new consent)
    circle_terms_version: str = "2025-03-26"
    circle_terms_file: Path = ROOT / "terms" / "circle-member-terms.ja.txt"
    circle_terms_url: str = (
        "https://socialsolution.omron.com/jp/ja/products_service/energy/eco_katau/"
    )

    # Reminders
    reminder_delays: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=3), timedelta(days=7), timedelta(days=14)]
    )
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)

    # API
    secret_key: SecretStr = Field(default=SecretStr("dev-only-change-me"))
    session_max_age: timedelta = timedelta(hours=12)
    system_api_key: SecretStr = Field(default=SecretStr("dev-system-key"))

    def codec_key_bytes(self) -> dict[str, bytes]:
        return {k: base64.b64decode(v.get_secret_value()) for k, v in self.codec_keys.items()}

    def reminder_policy(self) -> ReminderPolicy:
        return ReminderPolicy(
            delays=self.reminder_delays, quiet_start=self.quiet_start, quiet_end=self.quiet_end
        )

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

    def signup_policy(self) -> SignupPolicy:
        return SignupPolicy(
            link_ttl=self.signup_link_ttl,
            resend_cooldown=self.signup_resend_cooldown,
            resend_daily_cap=self.signup_resend_daily_cap,
            idle_reminder_after=self.signup_idle_reminder_after,
            abandon_after=self.signup_abandon_after,
            quiet_start=self.quiet_start,
            quiet_end=self.quiet_end,
        )


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
