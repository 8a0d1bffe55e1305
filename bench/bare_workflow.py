"""The bare workflow: the journey's shape with nothing of the journey in it.

Like ``EnrollmentWorkflow`` it is started, waits on a long timer (the reminder), and takes
updates that answer the customer; each update is one of three shapes:

- ``step_activity``: awaits one normal activity before it answers (three workflow tasks);
- ``step_local``: awaits one local activity before it answers (one workflow task);
- ``step_now``: answers at once.

The activity writes one row to a SQLite file (what the product's store writes cost at
least). ``status`` is a query of the workflow's state.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

TIMEOUT = timedelta(seconds=10)
RETRY = RetryPolicy(maximum_attempts=3)
REMINDER = timedelta(days=3)


class BareInput(BaseModel):
    journey: str


class BareStep(BaseModel):
    what: str


class BareAnswer(BaseModel):
    steps: int


@activity.defn(name="bare_write")
def bare_write(key: str) -> None:
    """Replaced by ``BareStore.write`` in the worker; declared here for the workflow."""
    raise NotImplementedError


@workflow.defn(name="BareJourney")
class BareJourney:
    @workflow.init
    def __init__(self, inp: BareInput) -> None:
        self._journey = inp.journey
        self._steps = 0
        self._done = False

    @workflow.run
    async def run(self, inp: BareInput) -> int:
        while not self._done:
            try:  # the reminder timer of the journey
                await workflow.wait_condition(lambda: self._done, timeout=REMINDER)
            except TimeoutError:
                pass
        return self._steps

    def _key(self, what: str) -> str:
        info = workflow.current_update_info()
        return f"{self._journey}:{what}:{info.id if info else 'run'}"

    @workflow.update
    async def step_activity(self, step: BareStep) -> BareAnswer:
        await workflow.execute_activity(
            bare_write, self._key(step.what), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
        self._steps += 1
        return BareAnswer(steps=self._steps)

    @workflow.update
    async def step_local(self, step: BareStep) -> BareAnswer:
        await workflow.execute_local_activity(
            bare_write, self._key(step.what), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
        self._steps += 1
        return BareAnswer(steps=self._steps)

    @workflow.update
    async def step_now(self, step: BareStep) -> BareAnswer:
        self._steps += 1
        return BareAnswer(steps=self._steps)

    @workflow.query
    def status(self) -> BareAnswer:
        return BareAnswer(steps=self._steps)

    @workflow.signal
    def finish(self) -> None:
        self._done = True
