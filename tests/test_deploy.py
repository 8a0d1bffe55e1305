"""docker-compose.yml, checked as far as it can be here: docker-compose validates it, every
service has a health check and a restart policy, the codec and the Temporal setup job are
wired, the setup job registers every search attribute of domain/search_attributes.py, the
ECOKATSU_CODEC_KEYS JSON survives interpolation, and the PostgreSQL roles script runs
against PostgreSQL with the app on the store role as the file configures it.

Docker itself is not run (no image can be pulled here)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from temporalio.testing import WorkflowEnvironment

from config import ROOT, Settings
from devtools.mailsink import MailSink
from domain import search_attributes
from store.engine import make_engine, migrate
from tests.api.conftest import _stack, settings_for
from tests.api.test_enrollment_api import walk_through
from tests.conftest import PG_ADMIN_URL

COMPOSE = ROOT / "docker-compose.yml"
LAPTOP_ENV = ROOT / "deploy" / "laptop.env.example"
ONE_SHOT = {"temporal-schema", "temporal-setup", "migrate"}
APPS = {"api", "worker", "migrate"}
SECRETS = {
    "POSTGRES_PASSWORD": "a",
    "TEMPORAL_DB_PASSWORD": "b",
    "ECOKATSU_DB_PASSWORD": "c",
    "ECOKATSU_SECRET_KEY": "d",
    "ECOKATSU_SYSTEM_API_KEY": "e",
    "ECOKATSU_CODEC_KEY_ID": "prod-1",
}
# The example env file leaves the database passwords to the user (no literal password in
# the repository): the tests supply them as the user's shell would.
DB_PASSWORDS = {
    k: SECRETS[k] for k in ("POSTGRES_PASSWORD", "TEMPORAL_DB_PASSWORD", "ECOKATSU_DB_PASSWORD")
}
PROD_KEYS = json.dumps({"prod-1": base64.b64encode(bytes(32)).decode(), "old": "AQ" * 21 + "E="})


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the << merges
    found: dict[str, dict[str, Any]] = loaded["services"]
    return found


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed here (.ci/run installs Debian's)")
    return subprocess.run(  # noqa: S603 (our own argv)
        [binary, "-f", str(COMPOSE), *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(ROOT)), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def no_env_file(tmp_path: Path) -> str:
    """An empty --env-file, so a developer's own .env beside the compose file is not read."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return str(empty)


def test_docker_compose_config_validates(no_env_file: str) -> None:
    checked = compose("--env-file", str(LAPTOP_ENV), "config", "-q", env=DB_PASSWORDS)
    assert checked.returncode == 0, checked.stderr
    # secrets have no defaults: a missing one is named, not silently replaced
    missing = compose("--env-file", no_env_file, "config", "-q", env={})
    assert missing.returncode != 0 and "set " in missing.stderr


def from_environment(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings read from a container's environment, as the app reads them at start."""
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def test_exported_codec_keys_reach_the_apps_as_valid_json(
    no_env_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way: export ECOKATSU_CODEC_KEYS='{…}'. The former `${VAR:-{json}}`
    default appended a stray brace to it, and every app container crashed."""
    rendered = compose(
        "--env-file", no_env_file, "config", env={**SECRETS, "ECOKATSU_CODEC_KEYS": PROD_KEYS}
    )
    assert rendered.returncode == 0, rendered.stderr
    config = yaml.safe_load(rendered.stdout)["services"]
    for name in APPS:
        environment = config[name]["environment"]
        assert environment["ECOKATSU_CODEC_KEYS"] == PROD_KEYS
        settings = from_environment(environment, monkeypatch)
        assert set(settings.codec_key_bytes()) == {"prod-1", "old"}
        assert settings.codec_key_id == "prod-1"
    # the laptop file's single-quoted JSON as well
    laptop = yaml.safe_load(
        compose("--env-file", str(LAPTOP_ENV), "config", env=DB_PASSWORDS).stdout
    )["services"]["api"]["environment"]
    assert set(from_environment(laptop, monkeypatch).codec_key_bytes()) == {"local-1"}


def test_every_service_has_a_health_check_and_a_restart_policy() -> None:
    for name, service in services().items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
        if name in ONE_SHOT:  # a finished job must not be restarted for ever
            assert service["restart"] == "on-failure", name


def test_temporal_is_set_up_the_recommended_way() -> None:
    found = services()
    assert not any("auto-setup" in s.get("image", "") for s in found.values())
    assert found["temporal"]["image"].startswith("temporalio/server:")
    schema, setup = found["temporal-schema"], found["temporal-setup"]
    assert schema["image"].startswith("temporalio/admin-tools:")
    assert setup["image"].startswith("temporalio/admin-tools:")
    assert "setup-schema.sh" in " ".join(schema["entrypoint"])
    assert "setup-namespace.sh" in " ".join(setup["entrypoint"])
    assert found["temporal"]["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    for app in ("api", "worker"):
        assert found[app]["depends_on"]["temporal-setup"] == {
            "condition": "service_completed_successfully"
        }
    # Temporal's own role, not the store's
    assert found["temporal"]["environment"]["POSTGRES_USER"] == "temporal"
    assert "//eco:" in found["api"]["environment"]["DATABASE_URL"]
    assert found["worker"]["deploy"]["replicas"] >= 2


def test_the_ui_decodes_through_the_api_behind_operator_sign_in() -> None:
    found = services()
    ui = found["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    proxy = (ROOT / "deploy" / "proxy" / "nginx.conf").read_text()
    assert "auth_request /_operator_check;" in proxy
    assert "http://api:8000/v1/operator/me" in proxy
    assert re.search(r"location /codec/ \{[^}]*http://api:8000", proxy)
    mounted = found["proxy"]["volumes"][0]
    assert mounted.startswith("./deploy/proxy/nginx.conf:")


def test_the_setup_job_registers_every_search_attribute() -> None:
    """The job's list is domain/search_attributes.py's ALL: a new attribute there fails
    this test until the job registers it too."""
    script = (ROOT / "deploy" / "temporal" / "setup-namespace.sh").read_text()
    block = script.split('SEARCH_ATTRIBUTES="', 1)[1].split('"', 1)[0]
    listed = dict(line.split(":") for line in block.split())
    # the CLI's --type names for the SDK's types
    types = {"KEYWORD_LIST": "KeywordList"}
    wanted = {
        key.name: types.get(key.indexed_value_type.name, key.indexed_value_type.name.title())
        for key in search_attributes.ALL
    }
    assert listed == wanted


@pytest.fixture
def compose_roles() -> Iterator[dict[str, str]]:
    """deploy/postgres/init-roles.sh run as the postgres image runs it, on this machine's
    PostgreSQL, under names of this test's own (roles are cluster-wide)."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "TEMPORAL_DB_USER": f"temporal_{suffix}",
        "ECOKATSU_DB_USER": f"eco_{suffix}",
        "ECOKATSU_DB_NAME": f"ecokatsu_{suffix}",
    }
    admin_url = sa.engine.make_url(PG_ADMIN_URL)
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": admin_url.host or "127.0.0.1",
        "PGPORT": str(admin_url.port or 5432),
        "POSTGRES_USER": admin_url.username or "postgres",
        "TEMPORAL_DB_PASSWORD": "t-pw",
        "ECOKATSU_DB_PASSWORD": "s-pw",
        **names,
    }
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    script = ROOT / "deploy" / "postgres" / "init-roles.sh"
    ran = subprocess.run(  # noqa: S603 (our own script)
        ["/bin/sh", str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        yield names
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{names["ECOKATSU_DB_NAME"]}" WITH (FORCE)')
            )
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{names["ECOKATSU_DB_USER"]}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{names["TEMPORAL_DB_USER"]}"'))
        admin.dispose()


async def test_the_app_runs_on_the_store_role_as_compose_configures_it(
    compose_roles: dict[str, str], dev_env: WorkflowEnvironment, mail_sink: MailSink
) -> None:
    admin_url = sa.engine.make_url(PG_ADMIN_URL)
    host = f"{admin_url.host or '127.0.0.1'}:{admin_url.port or 5432}"
    db = compose_roles["ECOKATSU_DB_NAME"]
    # the URL shape of docker-compose.yml's DATABASE_URL
    url = f"postgresql://{compose_roles['ECOKATSU_DB_USER']}:s-pw@{host}/{db}"
    migrate(url)  # as the migrate job does, on the store role (it owns the database)
    temporal_role = make_engine(
        f"postgresql://{compose_roles['TEMPORAL_DB_USER']}:t-pw@{host}/{db}"
    )
    with pytest.raises(sa.exc.OperationalError, match="permission denied"):
        with temporal_role.connect():
            pass  # Temporal's role cannot reach the store
    temporal_role.dispose()
    store = make_engine(url)
    with store.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT current_user")).scalar()
            == compose_roles["ECOKATSU_DB_USER"]
        )
        assert (
            conn.execute(
                sa.text("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")
            ).scalar()
            is False
        )
    store.dispose()
    async for stack in _stack(dev_env, settings_for(url, mail_sink), mail_sink, True):
        await walk_through(stack)


def test_ci_installs_docker_compose() -> None:
    ci = Path(ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y docker-compose" in ci
