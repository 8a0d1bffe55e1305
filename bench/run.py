"""One ``make bench`` run on one dev server: the bare workflow's worker and the product's
processes, their steps one at a time in alternating blocks, then each at c."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bare import BareBench, BareFigures, BareSizes
from bench.procs import Ports, machine, temporal_version
from bench.product import ProductFigures, ProductSizes, measure_product, start_product
from bench.report import Meta, render
from bench.stack import Stack
from config import ROOT


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class BenchResult:
    bare: BareFigures
    product: ProductFigures
    report: str


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (git from PATH)
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout.strip() or "?") + (
        " (with uncommitted changes)" if dirty.stdout.strip() else ""
    )


async def run_bench(
    workdir: Path,
    ports: Ports,
    bare_sizes: BareSizes,
    product_sizes: ProductSizes,
    temporal_db: Path | None = None,
    mail_worker: bool = False,
) -> BenchResult:
    meta = Meta(
        machine=machine(),
        temporal=temporal_version(),
        server=(f"on a SQLite file ({temporal_db}, WAL)" if temporal_db else "in memory")
        + ("; the product's mails in a worker process of their own" if mail_worker else ""),
        commit=commit(),
        started=time.strftime("%Y-%m-%d %H:%M"),
    )
    started = time.perf_counter()
    stack = Stack(workdir, ports, {**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        say(f"dev server ({meta.temporal}), {meta.server}; logs in {stack.logs}")
        await stack.start_temporal(temporal_db)
        bare = BareBench(stack, bare_sizes, say)
        await bare.start()
        say("product: mail sink, store, worker, API")
        product = await start_product(
            stack, f"bench-eco-katsu-{secrets.token_hex(4)}", mail_worker=mail_worker
        )
        figures = await measure_product(product, product_sizes, say, bare)
        product.engine.dispose()
    finally:
        stack.stop_all()
    meta.seconds = time.perf_counter() - started
    meta.blocks = product_sizes.blocks
    return BenchResult(bare.figures, figures, render(bare.figures, figures, meta))
