"""One worker tick in a process of its own: `python -m bench.workerrun SPEC.json`.

The benchmark starts this module as a child process so that its peak RSS is the worker's
alone (not the benchmark's, which holds the expected ids) and every run starts cold, as
`retention-worker run --once` does. It assembles the worker as the daemon does —
`subscribe_state` (audit trail, rule history, status) on a PostgreSQL state database,
`Metrics`, `LogSubscriber` (JSON lines at INFO, to /dev/null: formatted, then dropped) —
runs every configured customer × product once (`run_pairs`, a tick) and prints one JSON
object on stdout:

    seconds       wall time of run_pairs (the tick), s
    pairs         pairs run; outcomes: outcome → pairs; errors: the first 3 errors
    rules         effective rules of the first pair
    changed       table → rows the run reports changed
    batches       the duration of every applied batch (BatchApplied.duration_seconds: the
                  product transaction, intent included), s, in order
    audit_records records in the trail after the tick
    peak_rss_bytes this process's peak resident set at the end (whole life: imports
                  included): VmHWM of /proc/self/status on Linux. Not ru_maxrss: on Linux a
                  child inherits its parent's high-water mark across fork and exec, so it
                  reported the bench's own seeding (490 MiB at 10,000,000 rows) as ours.
                  ru_maxrss only where /proc is missing

The spec (JSON): config_dir, product_url, state_url, pepper (hex), now (ISO 8601),
batch_size (null: the mapping's), profile (a path for the top-25 cumulative report, or
null: cProfile around run_pairs, which slows the run down: never use its seconds; the raw
stats go to the same path with the suffix .prof).
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import json
import os
import pstats
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import load_config
from worker.events import BatchApplied, Event, EventBus
from worker.logging import LogSubscriber, configure_logging
from worker.metrics import Metrics
from worker.policy import effective_rules
from worker.settings import DEFAULT_SCHEMA_REUSE_SECONDS
from worker.state import StateStore

PRODUCT_URL_ENV = "FLEXKIDS_DATABASE_URL"


class BatchTimes:
    """EventBus subscriber: the duration of every applied batch, in seconds."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, BatchApplied):
            self.seconds.append(event.duration_seconds)


def tick(spec: dict[str, Any]) -> dict[str, Any]:
    """Run every pair of spec's configuration once; the figures described above."""
    devnull = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115 - lives as the run
    configure_logging("INFO", "json", devnull)
    config = load_config(Path(spec["config_dir"]))
    config.raise_for_problems()
    now = dt.datetime.fromisoformat(spec["now"])
    store = StateStore(spec["state_url"])
    try:
        store.check()
        bus = EventBus()
        subscribe_state(bus, store, lambda: now)
        bus.subscribe(Metrics())
        bus.subscribe(LogSubscriber())
        times = BatchTimes()
        bus.subscribe(times)
        runner = build_runner(
            config,
            {PRODUCT_URL_ENV: spec["product_url"]},
            bus,
            pepper=bytes.fromhex(spec["pepper"]),
            clock=lambda: now,
            batch_size=spec.get("batch_size"),
            store=store,
            # As the daemon and run --once (RETENTION_SCHEMA_REUSE_SECONDS' default).
            schema_reuse_seconds=DEFAULT_SCHEMA_REUSE_SECONDS,
        )
        pairs = list(config.pairs())
        profiler = cProfile.Profile() if spec.get("profile") else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        reports = run_pairs(runner, pairs, now, dry_run=False)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            _write_profile(profiler, Path(spec["profile"]), seconds)
        audited = store.audit_count()
    finally:
        store.close()
    changed: Counter[str] = Counter()
    gates: Counter[str] = Counter()
    for report in reports:
        for plan in report.rules:
            changed.update(plan.changed)
            gates[f"{plan.gate}: {'; '.join(plan.reasons)}" if plan.gate else "ran"] += 1
    customer, mapping = pairs[0]
    return {
        "seconds": seconds,
        "pairs": len(reports),
        "outcomes": dict(Counter(str(r.outcome) for r in reports)),
        "errors": [r.error for r in reports if r.error][:3],
        "rules": len(effective_rules(config.catalogue, customer, mapping)),
        "changed": dict(changed),
        "gates": dict(gates),
        "batches": times.seconds,
        "audit_records": audited,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes: VmHWM (Linux), else ru_maxrss
    (kilobytes on Linux and the BSDs, bytes on macOS: there it is not scaled)."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _write_profile(profiler: cProfile.Profile, path: Path, seconds: float) -> None:
    """Top 25 by cumulative time, then the top 25 of the project's own code (worker/,
    connectors/); the raw stats next to it as <path>.prof (pstats)."""
    out = io.StringIO()
    out.write(f"worker tick under cProfile: {seconds:.2f} s\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    out.write("\nThe project's own functions (worker/, connectors/):\n")
    stats.print_stats(r"/(worker|connectors)/", 25)
    path.write_text(out.getvalue(), encoding="utf-8")
    profiler.dump_stats(path.with_suffix(".prof"))


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = tick(spec)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
