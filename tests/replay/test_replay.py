"""Committed histories must replay on the current workflow code (determinism guard).

The histories are named here, per workflow type: a file that goes missing fails by its
name, a new file must be listed (and so reviewed), and a workflow type without a history
cannot slip through unguarded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import _Definition

from tests.conftest import CONVERTER
from tests.pii import assert_absent
from workflow_runner import workflow_runner
from workflows.enrollment import EnrollmentWorkflow
from workflows.member import MemberWorkflow
from workflows.signup import SignupWorkflow

HERE = Path(__file__).parent / "histories"
WORKFLOWS = [EnrollmentWorkflow, SignupWorkflow, MemberWorkflow]
# Workflow type (as Temporal knows it) → the recorded histories of that type.
HISTORIES: dict[str, list[str]] = {
    "EnrollmentWorkflow": [
        "enrollment_continued_as_new_first_run",  # patch continue-as-new
        "enrollment_continued_as_new_last_run",  # the carried state's path
        "enrollment_dormant_then_declined",
        "enrollment_enrolled_continued_first_run",  # patch continue-after-enrollment
        "enrollment_enrolled_continued_last_run",  # starts enrolled: no second continue
        "enrollment_enrolled_then_continued_for_length",  # before continue-after-enrollment
        "enrollment_ineligible",
        "enrollment_operator_actions",
        "enrollment_rejoined_enrolled",  # patch run-scoped-keys, points member
        "enrollment_withdrawn",
        "enrollment_withdrawn_points_suspended",
        # recorded on the patches store-writes-local and status-in-store (RECORD_SUFFIX):
        "enrollment_continued_as_new_first_run_local_writes",
        "enrollment_continued_as_new_last_run_local_writes",
        "enrollment_dormant_then_declined_local_writes",
        "enrollment_enrolled_continued_first_run_local_writes",
        "enrollment_enrolled_continued_last_run_local_writes",
        "enrollment_enrolled_then_continued_for_length_local_writes",
        "enrollment_ineligible_local_writes",
        "enrollment_operator_actions_local_writes",
        "enrollment_rejoined_enrolled_local_writes",
        "enrollment_withdrawn_local_writes",
        "enrollment_withdrawn_points_suspended_local_writes",
        # recorded on patch status-with-write (an update's write carries its status row):
        "enrollment_continued_as_new_last_run_status_with_write",
        "enrollment_dormant_then_declined_status_with_write",
        "enrollment_enrolled_continued_first_run_status_with_write",
        "enrollment_enrolled_continued_last_run_status_with_write",
        "enrollment_enrolled_then_continued_for_length_status_with_write",
        "enrollment_rejoined_enrolled_status_with_write",
        "enrollment_withdrawn_status_with_write",
        "enrollment_withdrawn_points_suspended_status_with_write",
        # on a dev server: the customer's start answered by update settle_start
        "enrollment_settled_start_declined",
        "enrollment_settled_start_ineligible",
        # recorded on patch first-status-after-check (no checking row at the start):
        "enrollment_continued_as_new_first_run_first_status_after_check",
        "enrollment_dormant_then_declined_first_status_after_check",
        "enrollment_enrolled_continued_first_run_first_status_after_check",
        "enrollment_ineligible_first_status_after_check",
        "enrollment_operator_actions_first_status_after_check",
        "enrollment_rejoined_enrolled_first_status_after_check",
        "enrollment_settled_start_declined_first_status_after_check",
        "enrollment_settled_start_ineligible_first_status_after_check",
        "enrollment_withdrawn_first_status_after_check",
    ],
    "PointSignupWorkflow": [
        "signup_expired_abandoned",
        "signup_operator_actions",
        "signup_registered",
        "signup_holder_confirmed",
        "signup_holder_declined",
        "signup_links_recorded_then_mailed",
        "signup_link_unsendable_abandoned",
        # recorded on the patches store-writes-local and status-in-store (RECORD_SUFFIX):
        "signup_expired_abandoned_local_writes",
        "signup_holder_confirmed_local_writes",
        "signup_holder_declined_local_writes",
        "signup_link_unsendable_abandoned_local_writes",
        "signup_links_recorded_then_mailed_local_writes",
        "signup_operator_actions_local_writes",
        "signup_registered_local_writes",
    ],
    "MemberWorkflow": [
        "member_change_expired",
        "member_changed_then_cancelled",
        # recorded on the patches store-writes-local and status-in-store (RECORD_SUFFIX):
        "member_change_expired_local_writes",
        "member_changed_then_cancelled_local_writes",
    ],
}
NAMES = [name for names in HISTORIES.values() for name in names]


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HERE / f"{name}.json").read_text())


def workflow_type(history: WorkflowHistory) -> str:
    started = history.events[0].workflow_execution_started_event_attributes
    return str(started.workflow_type.name)


def test_every_workflow_type_has_a_history() -> None:
    # The type names the worker registers (SignupWorkflow keeps its historical name).
    registered = {_Definition.must_from_class(w).name for w in WORKFLOWS}
    assert registered == set(HISTORIES)
    assert all(HISTORIES.values())


def test_every_committed_history_is_listed() -> None:
    assert sorted(p.stem for p in HERE.glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
async def test_replays(name: str) -> None:
    history = load(name)
    assert name in HISTORIES[workflow_type(history)]
    # With the workers' runner (workflow_runner.py): the sandbox they replay in.
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=CONVERTER, workflow_runner=workflow_runner(CONVERTER)
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("name", NAMES)
def test_histories_hold_no_personal_data(name: str) -> None:
    text = (HERE / f"{name}.json").read_text()
    assert "@example.com" not in text
    assert_absent(text.encode(), "髙橋")
