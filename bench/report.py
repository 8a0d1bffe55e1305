"""The printed report of ``make bench``: issue 10's table, the goals as ratios, and the
details behind them (per step p50/p95/p99, login, memory, scaling, CPU)."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

from bench.bare import DESCRIBED, BareFigures, JourneyRun
from bench.procs import ProcStats
from bench.product import CIRCLE_STEPS, POINTS_STEPS, ProductFigures
from bench.stats import Steps, ms, percentile

STEP_GOAL = 1.5  # an API step's p50 ≤ 1.5 × the bare update awaiting a local activity
STATUS_GOAL = 0.010  # GET status p50 ≤ 10 ms
JOURNEYS_GOAL = 0.8  # journeys/s ≥ 0.8 × the bare workflow's


@dataclass
class Meta:
    machine: str
    temporal: str
    server: str  # "in memory" or the SQLite file
    commit: str
    started: str
    seconds: float = 0.0
    blocks: int = 1  # the steps one at a time: bare and product alternating in this many
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def percentiles_table(title: str, steps: Steps, order: tuple[str, ...] = ()) -> list[str]:
    names = [n for n in order if n in steps.samples]
    names += [n for n in steps.samples if n not in names]
    lines = [title, f"  {'step':<20} {'p50':>9} {'p95':>9} {'p99':>9} {'n':>5}"]
    for name in names:
        values = steps.seconds(name)
        lines.append(
            f"  {name:<20} {ms(percentile(values, 0.5)):>9} {ms(percentile(values, 0.95)):>9} "
            f"{ms(percentile(values, 0.99)):>9} {len(values):>5}"
        )
    return lines


def memory_line(stats: dict[str, ProcStats], names: list[str]) -> str:
    return ", ".join(
        f"{n} {stats[n].hwm_mib:.0f} MiB (now {stats[n].rss_mib:.0f})" for n in names if n in stats
    )


def stops_rising(runs: list[JourneyRun]) -> str:
    ordered = sorted(runs, key=lambda r: r.concurrency)
    for before, after in itertools.pairwise(ordered):
        if after.per_second < before.per_second * 1.05:
            return (
                f"stops rising at c={before.concurrency} "
                f"({before.per_second:.1f}/s; c={after.concurrency}: {after.per_second:.1f}/s)"
            )
    last = ordered[-1]
    return f"still rising at c={last.concurrency} ({last.per_second:.1f}/s)"


def render(bare: BareFigures, product: ProductFigures, meta: Meta) -> str:
    p50 = {shape: bare.one_step[shape].p("update", 0.5) for shape in bare.one_step}
    local = p50.get("local", math.nan)
    c1 = product.c1
    out: list[str] = []
    add = out.append

    add(f"make bench, {meta.started}: {meta.machine}")
    add(
        f"{meta.temporal}; dev server {meta.server}; commit {meta.commit}; "
        f"run took {meta.seconds:.0f} s"
    )
    add(
        f"steps one at a time: the bare workflow's and the product's in {meta.blocks} "
        "alternating blocks (each bare block once the product's mails were out)"
    )
    add("")
    journeys = product.journeys
    product_step = ", ".join(
        f"{name} {ms(c1.p(name, 0.5))}"
        for name in ("consent", "apply", "start", "status", "login")
        if name in c1.samples
    ).replace("status", "status (a query)")
    bare_j = {shape: bare.journeys[shape].per_second for shape in bare.journeys}
    header = " | ".join(f"bare, update {DESCRIBED[s]}" for s in ("activity", "local", "now"))
    add(f"| | {header} | the product (`make bench`) |")
    add("|---|---|---|---|---|")
    add(
        "| one step, c=1, p50 | "
        + " | ".join(ms(p50.get(s, math.nan)) for s in ("activity", "local", "now"))
        + f" | {product_step} |"
    )
    if journeys is not None:
        conc = journeys.concurrency
        product_j = f"{journeys.per_second:.1f} at N={journeys.journeys} (login excluded)"
        add(
            f"| journeys/s at c={conc} (4 steps) | "
            + " | ".join(
                f"{bare_j[s]:.1f}" if s in bare_j else "" for s in ("activity", "local", "now")
            )
            + f" | {product_j} |"
        )
    add("")

    add(f"Goals (ratios of this run; bare update awaiting a local activity: {ms(local)} p50)")
    points = [n for n in POINTS_STEPS if n in c1.samples]
    for name in ("consent", "apply", *points):
        r = ratio(c1.p(name, 0.5), local)
        add(
            f"  {name + ' p50':<22} {ms(c1.p(name, 0.5)):>9}  ÷ bare local {r:5.2f}  "
            f"goal ≤ {STEP_GOAL}  {verdict(r <= STEP_GOAL)}"
        )
    status = c1.p("status", 0.5)
    bare_query = bare.one_step["local"].p("status", 0.5)
    add(
        f"  {'status p50':<22} {ms(status):>9}  (bare query {ms(bare_query)})"
        f"  goal ≤ 10 ms  {verdict(status <= STATUS_GOAL)}"
    )
    paced = product.paced
    if paced.samples:
        add(
            "  (not a goal) the same steps at a customer's pace, the previous step's mails "
            "sent meanwhile:"
        )
        add(
            "    "
            + ", ".join(
                f"{name} {ms(paced.p(name, 0.5))} (÷ bare local "
                f"{ratio(paced.p(name, 0.5), local):.2f})"
                for name in ("start", "consent", "apply", "status")
                if name in paced.samples
            )
        )
    if journeys is not None and "local" in bare_j:
        r = ratio(journeys.per_second, bare_j["local"])
        r_activity = ratio(journeys.per_second, bare_j.get("activity", math.nan))
        add(
            f"  {'journeys/s c=' + str(journeys.concurrency):<22} {journeys.per_second:>9.1f}  "
            f"÷ bare local {r:5.2f}  goal ≥ {JOURNEYS_GOAL}  {verdict(r >= JOURNEYS_GOAL)}"
            f"  (÷ bare activity {r_activity:.2f})"
        )
    add("")

    add("Login (argon2id, on purpose CPU-heavy)")
    add(f"  p50 at c=1: {ms(c1.p('login', 0.5))} (p95 {ms(c1.p('login', 0.95))})")
    logins = product.logins
    if logins is not None:
        per_core = 1 / logins.cpu_per_login if logins.cpu_per_login else math.nan
        add(
            f"  {logins.logins} logins, {logins.concurrency} at once: "
            f"{logins.per_second:.1f} logins/s (p50 {ms(logins.steps.p('login', 0.5))}); "
            f"the API used {logins.cpu_per_login:.2f} CPU s per login"
        )
        add(
            f"    → {per_core:.1f} logins/s per core ({logins.cores} cores: "
            f"{per_core * logins.cores:.1f}/s at most, the steps getting none)"
        )
    burst = product.burst
    if burst is not None:
        before = burst.traffic.all_seconds(burst.baseline)
        during = burst.traffic.all_seconds(burst.burst)
        r = ratio(percentile(during, 0.5), percentile(before, 0.5))
        add(
            f"  a burst of {burst.logins} logins at once under "
            f"{burst.traffic_concurrency} concurrent journeys: "
            f"step p50 {ms(percentile(before, 0.5))} before (n={len(before)}), "
            f"{ms(percentile(during, 0.5))} during (n={len(during)}) → ×{r:.2f}"
        )
        add(
            f"    the burst took {burst.burst[1] - burst.burst[0]:.1f} s, login p50 in it "
            f"{ms(burst.burst_logins.p('login', 0.5))}; per step p50 before → during: "
            + ", ".join(
                f"{n} {ms(percentile(burst.traffic.seconds(n, burst.baseline), 0.5))} → "
                f"{ms(percentile(burst.traffic.seconds(n, burst.burst), 0.5))}"
                for n in CIRCLE_STEPS
            )
        )
    add("")

    add("Memory (peak RSS, VmHWM, of each process)")
    add(
        "  1 worker, 1 API: "
        + memory_line(product.memory, ["worker1", "api1", "mailsink", "temporal"])
    )
    if product.scaled_memory:
        add(
            "  2 workers, 2 APIs: "
            + memory_line(product.scaled_memory, ["worker1", "worker2", "api1", "api2"])
        )
    if bare.worker_memory is not None:
        add(f"  bare worker: {bare.worker_memory.hwm_mib:.0f} MiB")
    add("")

    add("Scaling")
    if journeys is not None:
        line = (
            f"  journeys/s at c={journeys.concurrency}: 1 worker + 1 API {journeys.per_second:.1f}"
        )
        if product.scaled is not None:
            line += (
                f"; 2 workers + 2 APIs {product.scaled.per_second:.1f} "
                f"(×{ratio(product.scaled.per_second, journeys.per_second):.2f})"
            )
        add(line)
    if bare.ceiling:
        add(
            "  the dev server's ceiling (bare, update awaits a local activity): "
            + ", ".join(f"c={r.concurrency} {r.per_second:.1f}/s" for r in bare.ceiling)
            + f"; {stops_rising(bare.ceiling)}"
        )
        top = max(bare.ceiling, key=lambda r: r.concurrency)
        cores = bare.cpu.get(f"bare journeys c={top.concurrency}, local", {})
        if cores:
            used = sum(cores.values())
            add(
                f"    at c={top.concurrency} the processes used {used:.2f} of {meta.cores} cores "
                f"(the dev server {cores.get('temporal', 0.0):.2f})"
                + (
                    ": the machine's cores, not the server, set this ceiling"
                    if used >= 0.85 * meta.cores
                    else ""
                )
            )
    add(f"  CPU in use during each phase (cores; the machine has {meta.cores}):")
    for phase, cores in [*bare.cpu.items(), *product.cpu.items()]:
        total = sum(cores.values())
        add(
            f"    {phase:<46} total {total:4.2f}: "
            + ", ".join(f"{n} {v:.2f}" for n, v in sorted(cores.items(), key=lambda kv: -kv[1]))
        )
    add("")

    add("Per step, p50 / p95 / p99")
    for shape, steps in bare.one_step.items():
        out.extend(
            percentiles_table(
                f" bare, update {DESCRIBED[shape]}, c=1", steps, ("update", "start", "status")
            )
        )
    for shape, run in bare.journeys.items():
        out.extend(
            percentiles_table(
                f" bare, update {DESCRIBED[shape]}, journeys at c={run.concurrency}", run.steps
            )
        )
    out.extend(percentiles_table(" the product, c=1", c1, ("login", *CIRCLE_STEPS, *POINTS_STEPS)))
    if journeys is not None:
        out.extend(
            percentiles_table(f" the product, journeys at c={journeys.concurrency}", journeys.steps)
        )
    if product.scaled is not None:
        out.extend(
            percentiles_table(
                f" the product, journeys at c={product.scaled.concurrency}, 2 workers + 2 APIs",
                product.scaled.steps,
            )
        )
    if product.pages.samples:
        out.extend(percentiles_table(" web pages (server-rendered), c=1", product.pages))
    return "\n".join(out) + "\n"
