"""Command line of the benchmark: options, the measuring loop, and the result table/JSON."""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import data
from bench.database import CHOICES, DEFAULT_PG_URL, PG_URL_ENV, BenchError, Database, bench_database
from bench.variants import CUSTOMER, PRODUCT, Setup, Timing, baseline, load_setup, naive, worker
from worker.errors import RetentionError
from worker.logging import configure_logging

NAIVE_SAMPLE = 2000
DEFAULT_BATCH_SIZES = (500, 5000)

DESCRIPTION = """\
Measure the worker's delete throughput as ratios against baselines measured in the same
run, on the FlexKids reference schema: N expired invoices of tenant 1042 (kdv-zonnestraal),
N/10 that must be kept and N/10 of another tenant. Each variant starts from a freshly
seeded table and only the deletion is timed:

  baseline  one DELETE ... WHERE organisation_id = 1042 AND invoice_date < cutoff
  worker    a real run of kdv-zonnestraal x flexkids (shipped config/, audit trail in a
            SQLite state database), once per batch size
  naive     select the expired ids, then one DELETE per row in its own transaction
            (on at most 2000 rows, scaled to rows/second)

After every variant the benchmark checks that exactly the expired rows are gone; it stops
with an error otherwise. A ratio of 0.25 means a quarter of the baseline's rows/second.
"""

EPILOG = f"""\
database: PostgreSQL when {PG_URL_ENV} is set (a server URL naming an existing
database) or the local server answers at {DEFAULT_PG_URL};
a fresh rt_bench_<hex> database is created there and dropped afterwards. Otherwise
SQLite in a temporary folder. --db forces one (postgresql fails if no server answers).
"""


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        type=_at_least(10),
        default=20_000,
        metavar="N",
        help="expired invoices to delete (default 20000; N/10 kept, N/10 other tenant)",
    )
    parser.add_argument(
        "--repeat",
        type=_at_least(1),
        default=3,
        metavar="R",
        help="runs per variant; the median is reported (default 3)",
    )
    parser.add_argument(
        "--batch-size",
        type=_at_least(1),
        action="append",
        dest="batch_sizes",
        metavar="B",
        help="worker batch size; repeat the option for several (default 500 and 5000)",
    )
    parser.add_argument(
        "--db", choices=CHOICES, default="auto", help="which database to use (default auto)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    args.batch_sizes = tuple(dict.fromkeys(args.batch_sizes or DEFAULT_BATCH_SIZES))
    return args


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, run and verify every variant `args.repeat` times; the results as a dict."""
    setup = load_setup()
    dataset = data.build_dataset(args.rows, setup.cutoff)
    sample = min(NAIVE_SAMPLE, len(dataset.expired))
    sample_ids = frozenset(sorted(dataset.expired)[:sample])
    with (
        bench_database(args.db) as db,
        tempfile.TemporaryDirectory(prefix="rt_bench_state_") as folder,
    ):
        _progress(f"database: {db.version} at {db.label}")
        data.create(db.url)
        engine = sa.create_engine(db.url)
        try:
            table = data.invoice_table(engine)

            def check(name: str, gone: frozenset[int]) -> None:
                try:
                    data.verify(engine, table, dataset, gone)
                except data.WrongResult as exc:
                    raise data.WrongResult(f"{name}: {exc}") from None

            def run_baseline() -> Timing:
                timing = baseline(engine, setup.cutoff)
                check("baseline", dataset.expired)
                return timing

            def run_worker(size: int, *, trace: bool = False) -> Timing:
                timing = worker(
                    db.url,
                    setup,
                    size,
                    Path(folder),
                    expected=len(dataset.expired),
                    trace_memory=trace,
                )
                check(f"worker batch {size}", dataset.expired)
                return timing

            def run_naive() -> Timing:
                timing, gone = naive(engine, setup.cutoff, sample)
                if gone != sample_ids:
                    raise data.WrongResult("naive: it selected other rows than the sample")
                check("naive", sample_ids)
                return timing

            variants: dict[str, Callable[[], Timing]] = {"baseline": run_baseline}
            for size in args.batch_sizes:
                variants[f"worker_batch_{size}"] = functools.partial(run_worker, size)
            variants["naive_per_row"] = run_naive
            runs: dict[str, list[Timing]] = {name: [] for name in variants}
            for round_ in range(1, args.repeat + 1):
                for name, run in variants.items():
                    data.seed(engine, table, dataset)
                    timing = run()
                    runs[name].append(timing)
                    _progress(
                        f"  run {round_}/{args.repeat} {name:<20} {timing.rows:>7} rows "
                        f"in {timing.seconds:8.3f} s"
                    )
            peaks: dict[str, int | None] = {}
            for size in args.batch_sizes:  # separate runs: tracemalloc slows Python down
                data.seed(engine, table, dataset)
                peaks[f"worker_batch_{size}"] = run_worker(size, trace=True).peak_bytes
                _progress(f"  memory run worker_batch_{size}: done")
        finally:
            engine.dispose()
    return _summary(args, setup, db, dataset, sample, runs, peaks)


def _summary(
    args: argparse.Namespace,
    setup: Setup,
    db: Database,
    dataset: data.Dataset,
    sample: int,
    runs: dict[str, list[Timing]],
    peaks: dict[str, int | None],
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for name, timings in runs.items():
        seconds = statistics.median(t.seconds for t in timings)
        rows = timings[0].rows
        variants[name] = {
            "rows": rows,
            "seconds": round(seconds, 6),
            "rows_per_second": round(rows / seconds, 1),
            "runs_seconds": [round(t.seconds, 6) for t in timings],
        }
    base = variants["baseline"]["rows_per_second"]
    ratios = {
        f"{name}/baseline": round(v["rows_per_second"] / base, 4)
        for name, v in variants.items()
        if name != "baseline"
    }
    return {
        "database": db.kind,
        "server": db.version,
        "pair": f"{CUSTOMER} × {PRODUCT}",
        "rule": setup.rule,
        "cutoff": setup.cutoff.isoformat(),
        "rows": {
            "expired": len(dataset.expired),
            "kept": args.rows // 10,
            "other_tenant": args.rows // 10,
        },
        "naive_sample": sample,
        "repeat": args.repeat,
        "variants": variants,
        "ratios": ratios,
        "peak_memory_bytes": peaks,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
            "platform": platform.platform(),
        },
    }


LABELS = {"baseline": "baseline: one DELETE", "naive_per_row": "naive: DELETE per row"}


def _label(name: str) -> str:
    if name.startswith("worker_batch_"):
        return f"worker, batch {name.removeprefix('worker_batch_')}"
    return LABELS.get(name, name)


def render(result: dict[str, Any]) -> str:
    """The results as a plain-text table for people."""
    rows = result["rows"]
    lines = [
        f"Delete throughput: {result['pair']}, rule {result['rule']} (cutoff {result['cutoff']})",
        f"Database: {result['server']}; machine: {result['machine']['cpus']} CPUs, "
        f"Python {result['machine']['python']}",
        f"Data: {rows['expired']} expired invoices of tenant {data.TENANT}, {rows['kept']} kept, "
        f"{rows['other_tenant']} of tenant {data.OTHER_TENANT}; median of {result['repeat']} "
        f"run(s); naive on {result['naive_sample']} rows",
        "",
        f"{'variant':<24} {'rows':>7} {'seconds':>9} {'spread':>7} {'rows/s':>10} "
        f"{'vs baseline':>12} {'slower':>8}",
    ]
    for name, v in result["variants"].items():
        runs = v["runs_seconds"]
        spread = (max(runs) - min(runs)) / v["seconds"] if v["seconds"] else 0.0
        ratio = 1.0 if name == "baseline" else result["ratios"][f"{name}/baseline"]
        lines.append(
            f"{_label(name):<24} {v['rows']:>7} {v['seconds']:>9.3f} {spread:>7.0%} "
            f"{v['rows_per_second']:>10,.0f} {ratio:>12.4f} {1 / ratio:>7,.0f}x"
        )
    peaks = ", ".join(
        f"batch {name.removeprefix('worker_batch_')}: "
        + ("n/a" if peak is None else f"{peak / 2**20:.1f} MiB")
        for name, peak in result["peak_memory_bytes"].items()
    )
    lines += ["", f"Peak memory of a worker run (tracemalloc, separate run): {peaks}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING", "auto", sys.stderr)  # worker warnings, never on stdout
    try:
        result = measure(args)
    except (BenchError, RetentionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0
