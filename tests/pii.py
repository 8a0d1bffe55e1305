"""Searching what Temporal stores for personal data."""

from __future__ import annotations

import json

from temporalio.api.history.v1 import History
from temporalio.client import WorkflowHistory


def history_bytes(history: WorkflowHistory) -> bytes:
    """The history as the server stores it: payloads as raw bytes, not base64."""
    return History(events=history.events).SerializeToString()


def assert_absent(blob: bytes, *secrets: str) -> None:
    for secret in secrets:
        for form in (secret.encode(), json.dumps(secret)[1:-1].encode()):
            assert form not in blob, f"found personal data in what Temporal stores: {secret!r}"
