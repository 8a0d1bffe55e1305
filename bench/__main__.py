"""``make bench``: the bare workflow, then the product, in one run on one dev server.

Prints issue 10's table with the goals as ratios and the details, and writes the same
report to ``var/bench/last-run.txt``. Sizes: ``python -m bench --help`` (the Makefile
passes its variables).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from bench.bare import BareSizes
from bench.procs import Ports
from bench.product import ProductSizes
from bench.run import run_bench, say
from config import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    b, p = BareSizes(), ProductSizes()
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "18000"))
    )
    parser.add_argument(
        "--bare-calls", type=int, default=b.calls, help="bare steps at c=1, per shape"
    )
    parser.add_argument(
        "--bare-journeys", type=int, default=b.journeys, help="bare journeys per shape"
    )
    parser.add_argument("--concurrency", "-c", type=int, default=p.concurrency)
    parser.add_argument("--ceiling", default=",".join(map(str, b.ceiling)), help="e.g. 50,100")
    parser.add_argument("--logins", type=int, default=p.login_c1, help="logins at c=1")
    parser.add_argument("--steps", type=int, default=p.steps_c1, help="circle journeys at c=1")
    parser.add_argument(
        "--paced", type=int, default=p.paced_c1, help="circle journeys at c=1 with --pace"
    )
    parser.add_argument(
        "--pace", type=float, default=p.pace, help="seconds between a paced journey's steps"
    )
    parser.add_argument("--signups", type=int, default=p.signups_c1, help="points signups at c=1")
    parser.add_argument("--journeys", "-n", type=int, default=p.journeys, help="journeys at c")
    parser.add_argument("--login-concurrency", type=int, default=p.login_concurrency)
    parser.add_argument(
        "--login-throughput",
        type=int,
        default=p.login_throughput,
        help="logins at --login-concurrency",
    )
    parser.add_argument("--burst", type=int, default=p.burst_logins, help="logins in the burst")
    parser.add_argument("--burst-traffic", type=int, default=p.burst_traffic)
    parser.add_argument("--no-scale", action="store_true", help="skip 2 workers + 2 APIs")
    parser.add_argument(
        "--mail-worker",
        action="store_true",
        help="mails on a task queue of their own, in a worker process of their own",
    )
    parser.add_argument("--temporal-db", type=Path, default=None, help="dev server on this file")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "last-run.txt")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    args = parser.parse_args()
    ceiling = tuple(int(c) for c in args.ceiling.split(",") if c.strip())
    bare_sizes = BareSizes(
        calls=args.bare_calls,
        journeys=args.bare_journeys,
        concurrency=args.concurrency,
        ceiling=ceiling,
    )
    product_sizes = ProductSizes(
        login_c1=args.logins,
        steps_c1=args.steps,
        paced_c1=args.paced,
        pace=args.pace,
        signups_c1=args.signups,
        journeys=args.journeys,
        concurrency=args.concurrency,
        login_concurrency=args.login_concurrency,
        login_throughput=args.login_throughput,
        burst_logins=args.burst,
        burst_traffic=args.burst_traffic,
        scale=not args.no_scale,
    )
    workdir = Path(tempfile.mkdtemp(prefix="ecokatsu-bench-"))
    ok = False
    try:
        result = asyncio.run(
            run_bench(
                workdir,
                Ports(args.port_base),
                bare_sizes,
                product_sizes,
                args.temporal_db,
                args.mail_worker,
            )
        )
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"the run's logs, store and mails are kept in {workdir}")
    print(result.report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result.report)
    say(f"report written to {args.out}")


if __name__ == "__main__":
    main()
