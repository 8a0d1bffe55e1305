"""Settings: policies are nested models read once; the documented variable names work."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from api.schemas import SignupRequested
from config import Settings
from domain.enrollment import EnrollmentInput
from domain.errors import ErrorCode, message_for
from domain.jst import QuietHours
from domain.mail import MailKind
from domain.signup import SignupInput
from worker import mail_renderer


def test_documented_variables_set_the_nested_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ECOKATSU_SIGNUP_LINK_TTL": "PT2H",
        "ECOKATSU_SIGNUP_RESEND_DAILY_CAP": "2",
        "ECOKATSU_SIGNUP_REQUESTS_PER_HOUR": "3",
        "ECOKATSU_REMINDER_DELAYS": '["PT2M","PT5M"]',
        "ECOKATSU_QUIET_START": "00:00",
        "ECOKATSU_QUIET_END": "00:00",
        "ECOKATSU_SUPPORT_PHONE": "0120-000-000",
        "ECOKATSU_SMTP_HOST": "relay.example",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.signup.link_ttl == timedelta(hours=2)
    assert settings.signup.resend_daily_cap == 2
    assert settings.signup.abandon_after == timedelta(days=7)  # the model's default
    assert settings.signup_requests_per_hour == 3
    assert settings.reminder.delays == [timedelta(minutes=2), timedelta(minutes=5)]
    assert settings.quiet == QuietHours(start=time(0), end=time(0))
    assert settings.support.phone == "0120-000-000"
    assert settings.smtp_host == "relay.example"


def test_texts_render_the_configured_link_lifetime() -> None:
    settings = Settings.model_validate({"signup": {"link_ttl": "PT90M"}})
    renderer = mail_renderer(settings)
    link = renderer.render(
        MailKind.SIGNUP_LINK, {"name": "", "expires_at": "2026/01/01 10:30", "link_url": "x"}
    )
    expired = renderer.render(MailKind.SIGNUP_EXPIRED, {"name": ""})
    for text in (link.text, link.html, expired.text, expired.html):
        assert "90分" in text and "24時間" not in text
    assert "90分" in SignupRequested.for_link_ttl(settings.signup.link_ttl).message
    assert "24" not in message_for(ErrorCode.LINK_EXPIRED)


def test_support_contact_is_configured_once() -> None:
    settings = Settings.model_validate({"support": {"phone": "0120-111-222", "hours": "毎日"}})
    mail = mail_renderer(settings).render(MailKind.INVITATION, {"name": "x"})
    assert "0120-111-222" in mail.text and "毎日" in mail.html


def test_inputs_recorded_with_flat_quiet_hours_still_decode() -> None:
    terms = {"document": "d", "version": "v", "content_sha256": "0" * 64, "url": "u"}
    legacy = EnrollmentInput.model_validate(
        {
            "account_id": "a",
            "circle_terms": terms,
            "points_signup_url": "u",
            "reminders": {"delays": ["P1D"], "quiet_start": "22:00:00", "quiet_end": "08:00:00"},
        }
    )
    assert legacy.quiet_hours == QuietHours(start=time(22), end=time(8))
    signup = SignupInput.model_validate(
        {
            "signup_id": "s",
            "service_terms": terms,
            "privacy_policy": terms,
            "policy": {
                "link_ttl": "PT24H",
                "resend_cooldown": "PT1M",
                "resend_daily_cap": 5,
                "idle_reminder_after": "P2D",
                "abandon_after": "P7D",
                "quiet_start": "00:00:00",
                "quiet_end": "00:00:00",
            },
        }
    )
    assert signup.quiet_hours == QuietHours(start=time(0), end=time(0))
