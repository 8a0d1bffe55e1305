"""Committed histories must replay on the current workflow code (determinism guard)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import CONVERTER
from tests.pii import assert_absent
from workflows.enrollment import EnrollmentWorkflow
from workflows.signup import SignupWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    names = {p.stem.split("_")[0] for p in HISTORIES}
    assert names == {"enrollment", "signup"} and len(HISTORIES) >= 5


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[EnrollmentWorkflow, SignupWorkflow], data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_histories_hold_no_personal_data(path: Path) -> None:
    text = path.read_text()
    assert "@example.com" not in text
    assert_absent(text.encode(), "髙橋")
