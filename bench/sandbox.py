"""CPU of one workflow sandbox per workflow type (``python -m bench.sandbox``).

Every run a worker starts (a new journey, a continued one, a signup, and every run the
worker replays once it left the cache) gets a sandbox of its own: the SDK imports the
workflow's module, and every module it imports that is not passed through, afresh in it.
This is that cost, as the worker pays it (``SandboxedWorkflowRunner`` with the default
restrictions, the way ``worker.py`` builds its worker), in process CPU time over ``--n``
sandboxes, best of ``--rounds``, with the modules each sandbox loads afresh.

Run it after ``make install`` (byte-compiled modules): a module edited since is compiled
from source for every sandbox when ``PYTHONDONTWRITEBYTECODE`` is set (it is on our
development machines), several times the cost.

``fresh_modules`` hooks the SDK's private ``_runner._Instance`` (temporalio 1.35) to see
the sandbox's modules: an SDK upgrade may need it adjusted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sdk_runner
from temporalio.workflow import _Definition

from worker import WORKFLOWS


def fresh_modules(defn: _Definition) -> list[str]:
    """The modules a sandbox of ``defn`` holds that are not the worker's own (loaded
    afresh, or a restricted stand-in for a standard module)."""
    made: list[sdk_runner._Instance] = []
    original = sdk_runner._Instance.__init__

    def keep(self: sdk_runner._Instance, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    sdk_runner._Instance.__init__ = keep  # type: ignore[method-assign]
    try:
        SandboxedWorkflowRunner().prepare_workflow(defn)
    finally:
        sdk_runner._Instance.__init__ = original  # type: ignore[method-assign]
    modules = made[0].importer.new_modules
    return sorted(n for n, m in modules.items() if sys.modules.get(n) is not m and n != "__main__")


def cpu_ms_per_sandbox(defn: _Definition, n: int) -> float:
    runner = SandboxedWorkflowRunner()
    started = time.process_time()
    for _ in range(n):
        runner.prepare_workflow(defn)  # creates a sandboxed instance, as a new run does
    return (time.process_time() - started) / n * 1000


async def measure(n: int, rounds: int) -> dict[str, tuple[float, list[str]]]:
    """Per workflow type: the best CPU ms per sandbox, and the modules loaded afresh (an
    event loop runs, as in the worker: the instance binds itself to it)."""
    found = {}
    for cls in WORKFLOWS:
        defn = _Definition.must_from_class(cls)
        cpu_ms_per_sandbox(defn, 1)  # warm: the outside modules imported once
        best = min(cpu_ms_per_sandbox(defn, n) for _ in range(rounds))
        found[defn.name or cls.__name__] = (best, fresh_modules(defn))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="sandboxes per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, (ms, fresh) in asyncio.run(measure(args.n, args.rounds)).items():
        print(f"{name:22} {ms:6.2f} ms CPU per sandbox; loaded afresh: {', '.join(fresh)}")


if __name__ == "__main__":
    main()
