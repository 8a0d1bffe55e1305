"""Two small workflows for tests/test_workflow_runner.py (a module of their own: the
sandbox imports it afresh for every run, so it imports nothing but the SDK)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity, workflow


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class EchoTwice:
    """The text through a local activity, then a normal one: every kind of payload a
    journey's history holds (input, scheduled input, result, marker, workflow result)."""

    @workflow.run
    async def run(self, text: str) -> str:
        local = await workflow.execute_local_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=10)
        )
        return await workflow.execute_activity(
            echo, local, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class ReadsTheClock:
    """Non-deterministic code that the sandbox must refuse."""

    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()  # refused: the point of the test
