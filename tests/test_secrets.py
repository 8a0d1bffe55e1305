"""Outside development the API, worker and CLI refuse the published default secrets."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from config import ROOT, Settings, UnsafeSecrets

OWN: dict[str, Any] = {
    "secret_key": "a-real-secret-of-our-own",
    "system_api_key": "a-real-system-key",
    "signup_link_key": "a-real-signup-link-key",
    "codec_keys": {"prod-1": base64.b64encode(os.urandom(32)).decode()},
    "codec_key_id": "prod-1",
}


def test_the_default_refuses_every_published_secret_and_names_it_without_its_value() -> None:
    with pytest.raises(UnsafeSecrets) as refused:
        Settings().check_secrets("the API")
    text = str(refused.value)
    for name in (
        "ECOKATSU_SECRET_KEY",
        "ECOKATSU_SYSTEM_API_KEY",
        "ECOKATSU_SIGNUP_LINK_KEY",
        "ECOKATSU_CODEC_KEYS[dev-1]",
    ):
        assert name in text
    assert "dev-only-change-me" not in text and "dev-system-key" not in text
    assert "dev-only-signup-link-key" not in text


@pytest.mark.parametrize(
    "override",
    [
        {"secret_key": "dev-only-change-me"},
        {"system_api_key": "dev-system-key"},
        {"codec_keys": {"x": "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="}, "codec_key_id": "x"},
        {"secret_key": "  "},
        {"codec_server_token": "dev-system-key"},
        {"secret_key": "local-only-change-me"},  # docker-compose's former fallback
    ],
)
def test_one_published_or_empty_secret_is_enough_to_refuse(override: dict[str, Any]) -> None:
    with pytest.raises(UnsafeSecrets):
        Settings(env="production", **{**OWN, **override}).check_secrets("the worker")


def test_own_secrets_start_quietly(caplog: pytest.LogCaptureFixture) -> None:
    Settings(env="production", **OWN).check_secrets("the API")
    assert not caplog.records


def test_development_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        Settings(env="development").check_secrets("the API")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "PUBLISHED DEFAULT" in record.getMessage()
    assert "ECOKATSU_SECRET_KEY" in record.getMessage()


def test_the_api_refuses_to_build() -> None:
    with pytest.raises(UnsafeSecrets):
        create_app(Settings(env="production"))


def _run(args: list[str], tmp_path: Path, env_mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOKATSU_")}
    env.pop("DATABASE_URL", None)
    env |= {
        "ECOKATSU_ENV": env_mode,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        # Nothing listens here: a worker that got past the check would wait for it.
        "ECOKATSU_TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    return subprocess.run(  # noqa: S603 (our own interpreter and scripts)
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_worker_refuses_to_start(tmp_path: Path) -> None:
    done = _run(["worker.py"], tmp_path, "production")
    assert done.returncode != 0
    assert "refuses to start" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_cli_refuses_every_command_and_touches_nothing(tmp_path: Path) -> None:
    done = _run(["cli.py", "migrate"], tmp_path, "production")
    assert done.returncode == 2
    assert "refuses to start" in done.stderr
    assert not (tmp_path / "store.sqlite3").exists()


def test_the_cli_runs_in_development_and_says_so(tmp_path: Path) -> None:
    done = _run(["cli.py", "migrate"], tmp_path, "development")
    assert done.returncode == 0, done.stderr
    assert "PUBLISHED DEFAULT" in done.stderr
    assert (tmp_path / "store.sqlite3").exists()
