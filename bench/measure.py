"""The measuring loop: seed, run every variant from the same rows, check each, collect.

For each action (delete on `invoice`, anonymise on `parent`):

    seed <table>_seed once (the generator records which ids are expired)
    raw_all, raw_per_tenant   `baseline_repeat` times each (median), reseeded before each
    per_row                   once, on a sample
    worker                    `repeat` times (median): a tick in a child process
                              (bench.workerrun) over every tenant's customer, with a fresh
                              migrated state database on the same PostgreSQL server
    (profile)                 optionally one more worker tick under cProfile (untimed)

and after every variant the checker (bench.check). Then the idle tick: the tables hold
only rows that are not due, `idle_customers` customers with every shipped FlexKids rule
run once, and the check that nothing changed.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import baselines, check, data
from bench.baselines import Timing
from bench.configgen import ANONYMISE_RULE, DELETE_RULE, PRODUCT, REPO, write_config
from bench.database import BenchError, Database, postgres_database
from connectors.base import ColumnMask
from demo.schemas import create_schema
from worker.configload import load_config
from worker.policy import effective_rules, rule_cutoff
from worker.state import StateStore
from worker.targets import target_for

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
PEPPER = b"bench-pepper-0123456789abcdef"
ACTIONS = {"delete": ("invoice", DELETE_RULE), "anonymise": ("parent", ANONYMISE_RULE)}


@dataclass(frozen=True)
class Options:
    """What to measure: see `python -m bench --help`."""

    rows: int
    tenants: int
    idle_customers: int
    variants: tuple[str, ...]  # of delete, anonymise, idle
    repeat: int
    baseline_repeat: int
    sample: int
    batch_size: int | None
    profile_dir: Path | None
    server_url: str


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rule_facts(config_dir: Path, rule_id: str) -> tuple[dt.date, tuple[ColumnMask, ...]]:
    """The rule's cutoff at NOW (the same for every generated customer) and its masks."""
    config = load_config(config_dir)
    config.raise_for_problems()
    customer, mapping = next(iter(config.pairs()))
    rule = next(r for r in effective_rules(config.catalogue, customer, mapping) if r.id == rule_id)
    cutoff = rule_cutoff(rule, NOW, customer.timezone)
    target = target_for(rule, mapping, customer.products[PRODUCT], cutoff)
    return cutoff.date, tuple(target.masks)


def _median(timings: list[Timing]) -> dict[str, Any]:
    seconds = statistics.median(t.seconds for t in timings)
    rows = timings[0].rows
    return {
        "rows": rows,
        "seconds": round(seconds, 6),
        "rows_per_second": round(rows / seconds, 1) if seconds else None,
        "runs_seconds": [round(t.seconds, 6) for t in timings],
    }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    """One benchmark run on a fresh product database (see the module docstring)."""

    def __init__(self, opts: Options, product: Database, folder: Path) -> None:
        self.opts = opts
        self.product = product
        self.folder = folder
        self.engine = sa.create_engine(product.url)
        self.seeded: dict[str, data.Seeded] = {}
        self.masks: dict[str, tuple[ColumnMask, ...]] = {}

    def _seed(self, action: str) -> data.Seeded:
        if action not in self.seeded:
            table, rule = ACTIONS[action]
            config_dir = write_config(self.folder / action, self.opts.tenants, [rule])
            cutoff, masks = _rule_facts(config_dir, rule)
            started = time.perf_counter()
            seeded = data.seed(self.engine, table, self.opts.rows, self.opts.tenants, cutoff)
            progress(
                f"seeded {table}_seed: {seeded.rows} rows, {len(seeded.expired)} expired, "
                f"{self.opts.tenants} tenants + {seeded.outsider_rows} rows of an unconfigured "
                f"tenant, cutoff {cutoff} ({time.perf_counter() - started:.1f} s)"
            )
            self.seeded[action], self.masks[action] = seeded, masks
        return self.seeded[action]

    def _check(self, action: str, expected: frozenset[int], what: str) -> str:
        seeded = self.seeded[action]
        if action == "delete":
            return check.check_delete(self.engine, seeded.table, expected, what)
        return check.check_anonymise(
            self.engine, seeded.table, expected, self.masks[action], PEPPER, what
        )

    def tick(self, config_dir: Path, profile: Path | None = None) -> dict[str, Any]:
        """One worker tick in a child process, on a fresh migrated state database."""
        with postgres_database(self.opts.server_url) as state:
            store = StateStore(state.url)
            try:
                store.migrate()
            finally:
                store.close()
            spec = {
                "config_dir": str(config_dir),
                "product_url": self.product.url,
                "state_url": state.url,
                "pepper": PEPPER.hex(),
                "now": NOW.isoformat(),
                "batch_size": self.opts.batch_size,
                "profile": str(profile) if profile else None,
            }
            path = self.folder / "spec.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            done = subprocess.run(  # noqa: S603 - this interpreter, this package's module
                [sys.executable, "-m", "bench.workerrun", str(path)],
                capture_output=True,
                text=True,
                check=False,
                cwd=REPO,  # `-m bench.workerrun` finds this checkout's packages first
            )
            path.unlink()
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise BenchError(f"the worker process exited {done.returncode}:\n{tail}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if set(result["outcomes"]) != {"succeeded"}:
            raise BenchError(
                f"worker runs did not all succeed: {result['outcomes']} {result['errors']}"
            )
        return result

    def action(self, action: str) -> dict[str, Any]:
        """Every variant of one action; the results and the checks' summaries."""
        seeded = self._seed(action)
        masks, opts = self.masks[action], self.opts
        config_dir = self.folder / action
        checks: dict[str, str] = {}

        def timed(name: str, run: Callable[[], Timing], expected: frozenset[int]) -> Timing:
            data.reseed(self.engine, [seeded])
            timing = run()
            checks[name] = self._check(action, expected, name)
            progress(f"  {action} {name:<15} {timing.rows:>9} rows in {timing.seconds:9.3f} s")
            return timing

        runs: dict[str, list[Timing]] = {"raw_all": [], "raw_per_tenant": [], "per_row": []}
        for _ in range(opts.baseline_repeat):
            for name, fn in (
                ("raw_all", baselines.raw_all),
                ("raw_per_tenant", baselines.raw_per_tenant),
            ):
                runs[name].append(
                    timed(
                        name,
                        lambda fn=fn: fn(self.engine, seeded, action, masks, PEPPER),
                        seeded.expired,
                    )  # type: ignore[misc]
                )
        data.reseed(self.engine, [seeded])
        loop, ids = baselines.per_row(self.engine, seeded, action, masks, PEPPER, opts.sample)
        checks["per_row"] = self._check(action, ids, "per_row")
        if not ids <= seeded.expired:
            raise check.WrongResult(f"per_row: {action} selected rows that are not expired")
        progress(f"  {action} {'per_row':<15} {loop.rows:>9} rows in {loop.seconds:9.3f} s")
        runs["per_row"].append(loop)
        ticks: list[dict[str, Any]] = []
        for _ in range(opts.repeat):
            data.reseed(self.engine, [seeded])
            result = self.tick(config_dir)
            if result["changed"].get(seeded.table) != len(seeded.expired):
                raise check.WrongResult(
                    f"worker: reported {result['changed']} changed, expected "
                    f"{len(seeded.expired)} in {seeded.table}; rules: {result.get('gates')}"
                )
            checks["worker"] = self._check(action, seeded.expired, "worker")
            progress(
                f"  {action} {'worker':<15} {len(seeded.expired):>9} rows in "
                f"{result['seconds']:9.3f} s ({len(result['batches'])} batches, peak RSS "
                f"{result['peak_rss_bytes'] / 2**20:.0f} MiB)"
            )
            ticks.append(result)
        runs["worker"] = [Timing(t["seconds"], len(seeded.expired)) for t in ticks]
        if opts.profile_dir is not None:
            data.reseed(self.engine, [seeded])
            self.tick(config_dir, opts.profile_dir / f"profile-{action}.txt")
            checks["worker_profiled"] = self._check(action, seeded.expired, "worker (profiled)")
            progress(f"  {action} profiled tick: {opts.profile_dir / f'profile-{action}.txt'}")
        variants = {name: _median(timings) for name, timings in runs.items()}
        batches = [s for t in ticks for s in t["batches"]]
        return {
            "table": seeded.table,
            "rule": ACTIONS[action][1],
            "cutoff": seeded.cutoff.isoformat(),
            "rows": seeded.rows,
            "expired": len(seeded.expired),
            "outsider_rows": seeded.outsider_rows,
            "variants": variants,
            "ratios": _ratios(variants),
            "batches": len(batches) // max(1, len(ticks)),
            "batch_seconds_p50": _quantile(batches, 0.50),
            "batch_seconds_p99": _quantile(batches, 0.99),
            "batch_seconds_max": max(batches, default=None),
            "peak_rss_bytes": max(t["peak_rss_bytes"] for t in ticks),
            "audit_records": ticks[-1]["audit_records"],
            "checks": checks,
        }

    def idle(self) -> dict[str, Any]:
        """A tick with nothing to do: idle_customers customers, every shipped rule."""
        tables = [self._seed("anonymise"), self._seed("delete")]  # parent before invoice
        data.reseed(self.engine, tables, expired=False)
        config_dir = write_config(self.folder / "idle", self.opts.idle_customers, None)
        result = self.tick(config_dir)
        if any(result["changed"].values()):
            raise check.WrongResult(f"idle tick: changed {result['changed']}; expected nothing")
        checks = {
            t.table: check.check_delete(self.engine, t.table, t.expired, "idle tick")
            for t in tables
        }
        pairs_rules = result["pairs"] * result["rules"]
        progress(
            f"  idle tick: {result['pairs']} customers x {result['rules']} rules in "
            f"{result['seconds']:.2f} s"
        )
        profiled = None
        if self.opts.profile_dir is not None:
            profiled = self.opts.profile_dir / "profile-idle.txt"
            self.tick(config_dir, profiled)
        return {
            "customers": result["pairs"],
            "rules": result["rules"],
            "seconds": round(result["seconds"], 6),
            "per_customer_seconds": result["seconds"] / result["pairs"],
            "per_customer_rule_seconds": result["seconds"] / pairs_rules,
            "peak_rss_bytes": result["peak_rss_bytes"],
            "audit_records": result["audit_records"],
            "checks": checks,
        }

    def close(self) -> None:
        self.engine.dispose()


def _ratios(variants: dict[str, Any]) -> dict[str, float]:
    worker = variants["worker"]["rows_per_second"]
    return {
        f"worker/{name}": round(worker / v["rows_per_second"], 5)
        for name, v in variants.items()
        if name != "worker"
    }


def measure(opts: Options) -> dict[str, Any]:
    """Run everything `opts` asks for on a fresh product database; the results."""
    started = time.perf_counter()
    with (
        postgres_database(opts.server_url) as product,
        tempfile.TemporaryDirectory(prefix="rt_bench_") as tmp,
    ):
        progress(f"database: {product.version} at {product.label}")
        create_schema(product.url, PRODUCT)
        bench = Bench(opts, product, Path(tmp))
        try:
            baselines.prepare(bench.engine)
            results: dict[str, Any] = {"server": product.version}
            for action in ACTIONS:
                if action in opts.variants:
                    results[action] = bench.action(action)
            if "idle" in opts.variants:
                results["idle"] = bench.idle()
        finally:
            bench.close()
    results["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    return results
