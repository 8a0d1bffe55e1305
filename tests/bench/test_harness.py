"""The bench harness at a tiny size, so that it cannot rot unnoticed (marker ``bench``).

Not a timed test: no figure is checked, only that every phase of ``make bench`` and
``make bench-idle`` runs against the real processes and reports what it measured. It
starts two dev servers, the bare worker, and the product's processes (two workers and two
APIs at the end), about 1.5 minutes here: too long for ``make test``, so it runs with
``pytest tests/bench -m bench``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bare import SHAPES, BareSizes
from bench.idle import IdleSizes, run_idle
from bench.procs import Ports
from bench.product import CIRCLE_STEPS, POINTS_STEPS, ProductSizes
from bench.run import run_bench

pytestmark = pytest.mark.bench


@pytest.mark.timeout(300)
async def test_make_bench_runs_every_phase(tmp_path: Path) -> None:
    bare = BareSizes(warmup=1, calls=3, journeys=3, concurrency=2, ceiling=(3,))
    product = ProductSizes(
        warmup=1,
        login_c1=1,
        steps_c1=2,
        paced_c1=1,
        pace=0.05,
        signups_c1=2,  # one under the account's own address, one the holder confirms
        pages_c1=1,
        journeys=2,
        concurrency=2,
        login_concurrency=2,
        login_throughput=2,
        burst_logins=2,
        burst_traffic=1,
        burst_baseline=1.5,
    )
    result = await run_bench(tmp_path, Ports(), bare, product)

    assert set(result.bare.one_step) == set(SHAPES)
    assert all(len(s.seconds("update")) == 3 for s in result.bare.one_step.values())
    assert set(result.bare.journeys) == {"activity", "local"}
    assert [r.concurrency for r in result.bare.ceiling] == [2, 3]
    c1 = result.product.c1
    for step in ("login", *CIRCLE_STEPS, *POINTS_STEPS):
        assert c1.seconds(step), f"no {step} measured"
    assert result.product.journeys is not None and result.product.journeys.journeys == 2
    assert result.product.logins is not None and result.product.logins.api_cpu_seconds > 0
    assert result.product.burst is not None
    assert result.product.burst.burst_logins.seconds("login")
    assert {"worker1", "api1", "temporal"} <= set(result.product.memory)
    assert result.product.scaled is not None and result.product.scaled.journeys == 2
    assert {"worker2", "api2"} <= set(result.product.scaled_memory)
    assert result.product.paced.seconds("consent")
    rows = ("| one step, c=1, p50 |", "journeys/s at c=2 (4 steps)", "Goals", "Memory")
    for row in (*rows, "in 4 alternating blocks"):
        assert row in result.report


@pytest.mark.timeout(300)
async def test_make_bench_idle_counts_and_restarts(tmp_path: Path) -> None:
    figures, report = await run_idle(tmp_path, Ports(), IdleSizes(journeys=5, sample=3))

    assert figures.stages == {"awaiting_consent": 5}
    assert figures.statuses == {"Running": 5}
    assert figures.mails == 5
    assert figures.failures is not None and sum(figures.failures.values()) == 0
    assert figures.failed_events == 0
    assert figures.restart is not None and len(figures.restart.queries) == 3
    assert figures.stages_after == {"awaiting_consent": 5}
    assert "zero failures" in report and "polls again after" in report
