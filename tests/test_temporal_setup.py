"""Search attributes are registered at every start, idempotently, on a reused state file."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes
from temporal_client import ensure_search_attributes
from tests.conftest import BIN, CONVERTER

NAMES = sorted(k.name for k in search_attributes.ALL)


async def start(db: Path) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        data_converter=CONVERTER,
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(db),
        dev_server_log_level="error",
    )


async def test_registration_is_idempotent_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "temporal.sqlite"
    env = await start(db)
    try:
        assert sorted(await ensure_search_attributes(env.client, "default")) == NAMES
        assert await ensure_search_attributes(env.client, "default") == []
    finally:
        await env.shutdown()

    env = await start(db)  # the namespace now exists in the file
    try:
        assert await ensure_search_attributes(env.client, "default") == []
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert set(NAMES) <= set(listed.custom_attributes)
    finally:
        await env.shutdown()
