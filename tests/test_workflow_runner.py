"""workflow_runner.py: payload contexts answered outside the sandbox, for a converter that
ignores them; the sandbox itself unchanged."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.converter import (
    PayloadCodec,
    SerializationContext,
    StorageDriverStoreContext,
    WithSerializationContext,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from codec import ENCODING, encrypted_converter
from config import Settings
from store.engine import make_engine
from tests.conftest import CONVERTER, TEST_KEYS
from tests.waiting import eventually
from tests.workflows.probe_workflows import EchoTwice, ReadsTheClock, echo
from worker import build_worker
from workflow_runner import (
    ContextFreeSandboxedRunner,
    _ContextFreeInstance,
    context_free,
    workflow_runner,
)


class PerWorkflowCodec(PayloadCodec, WithSerializationContext):
    """A codec that uses its context (as one keyed per workflow would)."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(context)


def test_the_product_converter_gets_the_context_free_runner() -> None:
    assert context_free(CONVERTER)
    assert type(workflow_runner(CONVERTER)) is ContextFreeSandboxedRunner
    assert isinstance(workflow_runner(CONVERTER), SandboxedWorkflowRunner)


def test_a_converter_that_uses_contexts_gets_the_plain_sandbox() -> None:
    converter = encrypted_converter(TEST_KEYS, "test-1")
    aware = dataclasses.replace(converter, payload_codec=PerWorkflowCodec())
    assert not context_free(aware)
    assert type(workflow_runner(aware)) is SandboxedWorkflowRunner


class Sandboxed:
    """Stands for the SDK's sandboxed instance: records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def activate(self, act: Any) -> Any:
        self.asked.append("activate")
        return "completion"

    def get_serialization_context(self, command_info: Any) -> Any:
        raise AssertionError("entered the sandbox for a serialization context")

    def get_external_store_context(self, command_info: Any) -> Any:
        raise AssertionError("entered the sandbox for a store context")

    def get_info(self) -> Any:
        self.asked.append("info")
        return "info"

    def get_thread_id(self) -> int | None:
        self.asked.append("thread")
        return 7


def test_contexts_are_answered_outside_and_the_rest_is_the_sandboxes() -> None:
    sandboxed = Sandboxed()
    instance = _ContextFreeInstance(sandboxed)  # type: ignore[arg-type]
    assert instance.get_serialization_context(None) is None
    assert instance.get_external_store_context(None) == StorageDriverStoreContext(target=None)
    assert instance.activate(None) == "completion"  # type: ignore[arg-type]
    assert instance.get_info() == "info"  # type: ignore[comparison-overlap]
    assert instance.get_thread_id() == 7
    assert sandboxed.asked == ["activate", "info", "thread"]


async def test_every_payload_is_sealed_by_the_same_codec(ts_env: WorkflowEnvironment) -> None:
    client = ts_env.client
    queue = f"runner-{uuid.uuid4().hex}"
    secret = f"secret-{uuid.uuid4().hex}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[EchoTwice],
        activities=[echo],
        workflow_runner=workflow_runner(client.data_converter),
    ):
        handle = await client.start_workflow(
            "EchoTwice", secret, id=f"runner-{uuid.uuid4().hex}", task_queue=queue, result_type=str
        )
        assert await handle.result() == secret
    history = await handle.fetch_history()
    raw = history.to_json()
    assert secret not in raw
    kinds = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "input",
        EventType.EVENT_TYPE_MARKER_RECORDED: "local activity",
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity input",
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity result",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "result",
    }
    seen = set()
    for event in history.events:
        if event.event_type not in kinds:
            continue
        payloads = _payloads(event)
        assert payloads, kinds[event.event_type]
        for payload in payloads:
            assert payload.metadata["encoding"] == ENCODING, kinds[event.event_type]
            opened = (await CONVERTER.decode([payload], [str]))[0]
            assert opened == secret, kinds[event.event_type]
        seen.add(kinds[event.event_type])
    assert seen == set(kinds.values())


def _payloads(event: Any) -> list[Payload]:
    """The payloads of the events the test reads (the marker's result is under 'result')."""
    if event.HasField("workflow_execution_started_event_attributes"):
        return list(event.workflow_execution_started_event_attributes.input.payloads)
    if event.HasField("marker_recorded_event_attributes"):
        return list(event.marker_recorded_event_attributes.details["result"].payloads)
    if event.HasField("activity_task_scheduled_event_attributes"):
        return list(event.activity_task_scheduled_event_attributes.input.payloads)
    if event.HasField("activity_task_completed_event_attributes"):
        return list(event.activity_task_completed_event_attributes.result.payloads)
    return list(event.workflow_execution_completed_event_attributes.result.payloads)


async def test_the_sandbox_still_refuses_non_deterministic_calls(
    ts_env: WorkflowEnvironment,
) -> None:
    client = ts_env.client
    queue = f"runner-{uuid.uuid4().hex}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReadsTheClock],
        workflow_runner=workflow_runner(client.data_converter),
    ):
        handle = await client.start_workflow(
            "ReadsTheClock", id=f"runner-{uuid.uuid4().hex}", task_queue=queue
        )

        async def task_failed() -> str | None:
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failure = event.workflow_task_failed_event_attributes.failure
                    return str(failure.application_failure_info.type)
            return None

        # (the message is sealed by the codec: the type is what the history shows)
        kind = await eventually(task_failed, what="the workflow task failed")
        assert kind == "RestrictedWorkflowAccessError"
        await handle.terminate("test finished")
    try:
        await handle.result()
    except WorkflowFailureError:
        pass


async def test_the_worker_walks_payloads_one_at_a_time(
    ts_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    """No payload is stored outside the history, so the SDK's second walk of every
    activation and completion (external storage) has nothing to fetch or store: one
    payload list at a time, not an asyncio task for each (the SDK's default is 3 at once;
    README, Benchmarks)."""
    settings = Settings(env="development", database_url=sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        threads = (
            settings.worker_max_concurrent_activities
            + settings.worker_max_concurrent_local_activities
        )
        with ThreadPoolExecutor(max_workers=threads) as executor:
            built = build_worker(ts_env.client, settings, engine, executor)
            assert ts_env.client.data_converter.external_storage is None
            assert built.config()["max_workflow_task_external_storage_concurrency"] == 1
    finally:
        engine.dispose()
