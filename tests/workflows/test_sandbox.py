"""What a new run's sandbox loads afresh (bench/sandbox.py measures what it costs): its
own workflow module, not another workflow's. The signup only names the journey's signal,
so it passes the journey's module through instead of loading it for every run.
(``fresh_modules`` reads the SDK's private sandbox instance: an SDK upgrade may need it
adjusted.)"""

from __future__ import annotations

from temporalio.workflow import _Definition

from bench.sandbox import fresh_modules
from worker import WORKFLOWS

# Helpers of the workflows that load afresh with the package (a few lines, no workflow).
HELPERS = {"workflows", "workflows.metrics"}


async def test_each_sandbox_loads_its_own_workflow_module_only() -> None:
    for cls in WORKFLOWS:
        fresh = fresh_modules(_Definition.must_from_class(cls))
        own = [m for m in fresh if m.startswith("workflows") and m not in HELPERS]
        assert own == [cls.__module__], cls.__name__
