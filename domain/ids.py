"""Workflow IDs: opaque, derived from store IDs (random UUIDs), never from an e-mail."""

from __future__ import annotations


def enrollment_workflow_id(account_id: str) -> str:
    return f"enrollment-{account_id}"


def signup_workflow_id(signup_id: str) -> str:
    return f"signup-{signup_id}"


def member_workflow_id(signup_id: str) -> str:
    """A スマイルeポイント member's workflow: keyed by the signup that created the member
    (random), not by the member's row number (which would tell how many members exist)."""
    return f"member-{signup_id}"
