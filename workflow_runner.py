"""The workers' workflow runner: the SDK's sandbox, without its detours for payload contexts.

For every payload of every activation and completion, temporalio (1.35) asks the workflow
instance which serialization context, and which external-storage context, the payload
belongs to (the command it rides on: an activity's input, an update's answer…). The
sandboxed instance answers each question by running a code string inside the sandbox with
the importer's restrictions applied and lifted again: several entries per payload, about
a fifth of the worker's CPU on a journey's steps (README, Benchmarks).

Those answers only matter to a data converter that uses them. Ours (pydantic, the AES-GCM
codec of ``codec.py``, encoded failure attributes) gives the same converter whatever the
context, and stores no payload externally, so ``workflow_runner`` gives an instance that
answers without entering the sandbox: the payloads are encoded by the same converter as
before, byte for byte the same. The sandbox itself is untouched: the workflow still runs
in it, with its restrictions (``datetime.now()`` in workflow code still fails the task).

A converter that does use a context (a codec keyed per workflow, say, or external
storage) is detected when the worker is built and gets the SDK's plain sandboxed runner.
"""

from __future__ import annotations

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import (
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info

# One context of each kind a workflow's payloads are encoded under.
_SAMPLE_CONTEXTS: tuple[SerializationContext, ...] = (
    WorkflowSerializationContext(namespace="default", workflow_id="enrollment-x"),
    ActivitySerializationContext(
        namespace="default",
        activity_id="1",
        activity_type="record_consent",
        activity_task_queue="eco-katsu",
        workflow_id="enrollment-x",
        workflow_type="EnrollmentWorkflow",
        is_local=True,
    ),
)


def context_free(converter: DataConverter) -> bool:
    """Whether ``converter`` encodes every payload the same whatever its context: no part
    of it takes one (``with_context`` gives the converter itself back) and it stores no
    payload outside the history."""
    return converter.external_storage is None and all(
        converter.with_context(context) is converter for context in _SAMPLE_CONTEXTS
    )


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed instance whose payload contexts are answered outside the sandbox."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        # None: the worker's own converter, the same one any context would give.
        return None

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)  # no external storage

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()  # for the deadlock detector's stack dump


class ContextFreeSandboxedRunner(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner (default restrictions), whose instances answer payload
    contexts outside the sandbox. Only for a converter ``context_free`` accepts."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


def workflow_runner(converter: DataConverter) -> WorkflowRunner:
    """The runner for workers (and replayers) whose client encodes with ``converter``."""
    if context_free(converter):
        return ContextFreeSandboxedRunner()
    return SandboxedWorkflowRunner()
