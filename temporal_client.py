"""The one way to connect to Temporal, used by the worker, the API, the CLI and the tests."""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from codec import encrypted_converter
from config import Settings
from domain import search_attributes

log = logging.getLogger(__name__)


def converter_for(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted with the configured keys; failures encoded too."""
    return encrypted_converter(settings.codec_key_bytes(), settings.codec_key_id)


async def connect(
    settings: Settings, *, wait: float = 0.0, runtime: Runtime | None = None
) -> Client:
    """Connect with the encrypted pydantic converter; retry for up to ``wait`` seconds.
    ``runtime``: the worker's, which exports the SDK's metrics (``worker.py``)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter_for(settings),
                runtime=runtime,
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register our custom search attributes where missing; returns the names added.

    Idempotent. Needed at every start: the dev server's ``--search-attribute`` flag is not
    applied to a namespace that already exists in a reused database file. The
    time-skipping test server cannot list attributes, only add them: there each one is
    added and "already exists" counts as done.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        wanted = [k for k in search_attributes.ALL if k.name not in existing.custom_attributes]
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        wanted = list(search_attributes.ALL)
    added = []
    for key in wanted:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    # The SDK's indexed-value-type enum carries the API's numbers.
                    search_attributes={
                        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
                    },
                )
            )
            added.append(key.name)
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS and "already exists" not in err.message:
                raise
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    return added
