"""Issue 6's proof: the journey keeps its promises while the stack is broken under it.

Real processes, as ``make run`` starts them (Temporal dev server on a SQLite file, SMTP
sink writing .eml files, worker, API under uvicorn, SQLite store), 30 journeys through the
HTTP API, and a fault driver that kills -9 the worker three times and the Temporal server
once and stops the SMTP sink for 40 s. ``make faults`` runs it and prints the table.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from config import ROOT
from tests.faults.scenario import run_scenario

pytestmark = pytest.mark.faults


@pytest.mark.timeout(330)
async def test_journeys_keep_their_promises_under_faults() -> None:
    # Kept after the run for the evidence (logs of every process, the .eml files, every
    # request in exchanges.jsonl), under var/ rather than pytest's tmp dirs, which other
    # pytest sessions of the same user rotate away.
    workdir = Path(
        os.environ.get("FAULTS_WORKDIR")
        or ROOT / "var" / "faults" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
    )
    report = await run_scenario(workdir)
    print("\n" + report.table())
    assert report.failures() == []
