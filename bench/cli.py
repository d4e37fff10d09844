"""Command line of the benchmark: options, then measure, print the table, write the JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.database import DEFAULT_PG_URL, PG_URL_ENV, BenchError, probe, safe
from bench.measure import Options, measure
from bench.report import render
from worker.errors import RetentionError

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("delete", "anonymise", "idle")
QUICK = {"rows": 100_000, "idle_customers": 200, "baseline_repeat": 1, "sample": 500}

DESCRIPTION = """\
Measure the worker against baselines on the same data in the same run, on a shared
FlexKids product database on PostgreSQL (a fresh rt_bench_<hex> database, dropped
afterwards; every worker tick gets a fresh, migrated state database on the same server).

  delete     invoice: N rows, 10 % expired (rule flexkids.invoice.fiscal)
  anonymise  parent: N rows, 10 % expired (rule flexkids.parent.relation-ended: fixed
             text, NULLs, postcode digits, birth year, keyed hash of the e-mail)
  idle       a tick with nothing due: --idle-customers customers, every FlexKids rule

Rows belong to --tenants tenants, one customer each, plus 1 % of an unconfigured tenant.
Baselines: one raw statement over all tenants, one per tenant, a per-row loop on a sample.
The worker: one tick (every customer once, as `run --once`) in a child process, with the
audit trail, metrics and logging as the daemon has them. After every variant the bench
checks that exactly the expired rows changed and every other row is untouched; it stops
with an error otherwise. Ratios are worker rows/s / baseline rows/s.
"""

EPILOG = f"""\
--quick: {QUICK["rows"]:,} rows, {QUICK["idle_customers"]} idle customers, baselines once,
per-row sample {QUICK["sample"]}: about 35 seconds on 2 cores. Its ratios mean the same, but
each customer's fixed cost weighs more against fewer rows; quote the full shape.
`make bench` runs --quick; `make bench ROWS=1000000` the full shape (about 4 minutes).
--tenants 10000 gives many tenants with few rows each; --rows 10000000 the 10M option.

Server: {PG_URL_ENV}, else {DEFAULT_PG_URL}.
Results: the table on stdout, the JSON in --results (default .bench/, git-ignored):
bench-<UTC time>.json and latest.json; with --profile also profile-<variant>.txt/.prof.
Exit status: 0 done (whatever the goals say), 1 error or wrong result, 2 bad options.
"""


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _variants(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(VARIANTS)} (comma-separated)")
    return chosen


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rows", type=_at_least(100), metavar="N", help="rows per table (default 1000000)"
    )
    p.add_argument(
        "--tenants", type=_at_least(1), default=100, metavar="T", help="tenants (default 100)"
    )
    p.add_argument(
        "--idle-customers",
        type=_at_least(1),
        metavar="C",
        help="customers of the idle tick (default 1000)",
    )
    p.add_argument(
        "--variants",
        type=_variants,
        default=VARIANTS,
        metavar="LIST",
        help="which of delete,anonymise,idle to run (default all)",
    )
    p.add_argument("--quick", action="store_true", help="a smaller run (see below)")
    p.add_argument(
        "--repeat",
        type=_at_least(1),
        default=1,
        metavar="R",
        help="worker ticks per action; median (default 1)",
    )
    p.add_argument(
        "--baseline-repeat",
        type=_at_least(1),
        metavar="R",
        help="runs of each raw baseline; median (default 3)",
    )
    p.add_argument(
        "--sample", type=_at_least(10), metavar="S", help="rows of the per-row loop (default 2000)"
    )
    p.add_argument(
        "--batch-size",
        type=_at_least(1),
        metavar="B",
        help="worker batch size (default: the mapping's)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more tick per variant under cProfile (top 25 cumulative into the results folder)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=REPO / ".bench",
        metavar="DIR",
        help="where the JSON goes (default .bench/)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = p.parse_args(argv)
    defaults = {"rows": 1_000_000, "idle_customers": 1000, "baseline_repeat": 3, "sample": 2000}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else value)
    return args


def _earlier(folder: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(folder.glob("bench-*.json")):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
    why = probe(server)
    if why is not None:
        print(
            f"error: PostgreSQL at {safe(server)} does not answer ({why}); "
            f"start it or set {PG_URL_ENV}",
            file=sys.stderr,
        )
        return 1
    args.results.mkdir(parents=True, exist_ok=True)
    opts = Options(
        rows=args.rows,
        tenants=args.tenants,
        idle_customers=args.idle_customers,
        variants=args.variants,
        repeat=args.repeat,
        baseline_repeat=args.baseline_repeat,
        sample=args.sample,
        batch_size=args.batch_size,
        profile_dir=args.results if args.profile else None,
        server_url=server,
    )
    earlier = _earlier(args.results)
    try:
        result = measure(opts)
    except (BenchError, RetentionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finished = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = {
        "finished_at": finished.isoformat(),
        "options": {
            "rows": opts.rows,
            "tenants": opts.tenants,
            "idle_customers": opts.idle_customers,
            "variants": list(opts.variants),
            "repeat": opts.repeat,
            "baseline_repeat": opts.baseline_repeat,
            "sample": opts.sample,
            "batch_size": opts.batch_size,
            "quick": args.quick,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
            "platform": platform.platform(),
        },
        **result,
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    stamp = finished.strftime("%Y%m%dT%H%M%SZ")
    (args.results / f"bench-{stamp}.json").write_text(text + "\n", encoding="utf-8")
    (args.results / "latest.json").write_text(text + "\n", encoding="utf-8")
    print(text if args.json else render(result, earlier))
    print(f"results: {args.results / f'bench-{stamp}.json'}", file=sys.stderr)
    return 0
