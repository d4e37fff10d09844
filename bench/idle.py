"""The fixed cost of a tick: many customers of one shared product database, nothing expired.

    python -m bench.idle                         # SQLite and PostgreSQL (when it answers)
    python -m bench.idle --db sqlite --customers 100 --ticks 3 --work-rows 200

A benchmark, not a test. It builds one FlexKids database (the reference schema of
`demo.schemas`) shared by `--customers` customers (organisation ids 10000, 10001, …), each
with a few rows that are not expired, and a configuration with those customers (a copy of
the shipped config/ without its own customers). Then it times, in one process:

- `idle_first`: the first tick over every customer (the process starts cold);
- `idle`: further ticks (median of `--ticks`), nothing expired;
- `work`: one tick after `--work-rows` expired invoices and a tenth as many ended parent
  relations were added for every customer (delete and anonymise), checked after the tick:
  exactly those rows changed, nothing else;
- `idle_after`: one tick after the work.

With `--state none` there is no state database and no audit trail: the product database's
share of the cost alone. `--state postgresql` puts the state database on the bench server
(a fresh database, dropped afterwards), as in production.

Each tick is what `retention-worker run --once` does for every pair: a real Runner with the
audit trail, rule history, status, legal holds and approvals in a migrated state database
(SQLite by default).
Figures are milliseconds per customer and per customer × rule (FlexKids has 6 rules per
customer), and SQL statements per customer (every engine's, product and state database;
COMMIT, BEGIN and ROLLBACK not counted). `--profile` prints the 25 costliest functions of
one warm idle tick and keeps the raw stats in bench-idle.prof in the temporary folder.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.database import (
    DEFAULT_PG_URL,
    PG_URL_ENV,
    BenchError,
    Database,
    postgres_database,
    probe,
    sqlite_database,
)
from demo.schemas import create_schema
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import EventBus, Outcome
from worker.policy import effective_rules
from worker.settings import DEFAULT_SCHEMA_REUSE_SECONDS
from worker.state import StateStore

REPO = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
PEPPER = b"bench-pepper-0123456789abcdef"
FIRST_TENANT = 10_000
RECENT = dt.date(2026, 10, 1)
OLD = dt.date(2015, 3, 1)  # past every FlexKids cutoff at NOW


def write_config(folder: Path, customers: int) -> Config:
    """config/ copied to `folder` with `customers` FlexKids customers instead of its own."""
    shutil.copytree(REPO / "config", folder, dirs_exist_ok=True)
    for old in (folder / "customers").glob("*.yaml"):
        old.unlink()
    (folder / "products" / "konnect.yaml").unlink()
    catalogue = folder / "catalogue.yaml"
    text = catalogue.read_text(encoding="utf-8")
    catalogue.write_text(text.split("\n  konnect:")[0] + "\n", encoding="utf-8")
    for n in range(customers):
        (folder / "customers" / f"c{n:05d}.yaml").write_text(
            f"customer: c{n:05d}\ntimezone: Europe/Amsterdam\nproducts:\n"
            f"  flexkids:\n    tenant: {FIRST_TENANT + n}\n",
            encoding="utf-8",
        )
    config = load_config(folder)
    config.raise_for_problems()
    return config


def seed_idle(url: str, customers: int) -> None:
    """A few rows per customer, none past its cutoff."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in t}
    ident = 1
    for n in range(customers):
        org = FIRST_TENANT + n
        for _ in range(2):
            ident += 1
            common = {"id": ident, "organisation_id": org, "created_at": NOW.replace(tzinfo=None)}
            rows["app_user"].append(
                {**common, "role": "x", "last_login_at": dt.datetime(2026, 11, 1)}
            )
            rows["parent"].append({**common, "relation_started_on": RECENT})
            rows["child"].append(
                {**common, "group_name": "g", "registered_on": RECENT, "parent_id": ident}
            )
            rows["invoice"].append(
                {**common, "number": f"N{ident}", "amount_cents": 1, "invoice_date": RECENT}
            )
            rows["staff"].append({**common, "role": "x", "employment_started_on": RECENT})
    with engine.begin() as conn:
        for name in ("app_user", "parent", "child", "invoice", "staff"):
            conn.execute(t[name].insert(), rows[name])
    engine.dispose()


def seed_work(url: str, customers: int, per_customer: int) -> dict[str, int]:
    """Expired invoices (delete) and ended parent relations (anonymise) for every customer;
    returns the rows each rule must change in all."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    invoice, parent = md.tables["invoice"], md.tables["parent"]
    invoices: list[dict[str, Any]] = []
    parents: list[dict[str, Any]] = []
    ident = 10_000_000
    created = NOW.replace(tzinfo=None)
    for n in range(customers):
        org = FIRST_TENANT + n
        for i in range(per_customer):
            ident += 1
            invoices.append(
                {
                    "id": ident,
                    "organisation_id": org,
                    "number": f"O{ident}",
                    "amount_cents": 1,
                    "invoice_date": OLD,
                    # Paid: the FlexKids rule keeps an unpaid invoice (an open claim).
                    "paid_on": OLD,
                    "created_at": created,
                }
            )
            if i % 10 == 0:
                parents.append(
                    {
                        "id": ident,
                        "organisation_id": org,
                        "first_name": "Jan",
                        "email": f"p{ident}@example.test",
                        "relation_started_on": OLD,
                        "relation_ended_on": OLD,
                        "created_at": created,
                    }
                )
    with engine.begin() as conn:
        conn.execute(invoice.insert(), invoices)
        conn.execute(parent.insert(), parents)
    engine.dispose()
    return {"invoice": len(invoices), "parent": len(parents)}


def check_work(url: str, expected: dict[str, int]) -> None:
    """Exactly the seeded rows changed: old invoices gone, ended parents masked, rest kept."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        old = conn.execute(sa.text("SELECT count(*) FROM invoice WHERE id > 10000000")).scalar()
        kept = conn.execute(sa.text("SELECT count(*) FROM invoice WHERE id < 10000000")).scalar()
        masked = conn.execute(
            sa.text("SELECT count(*) FROM parent WHERE id > 10000000 AND first_name = 'anonymised'")
        ).scalar()
        untouched = conn.execute(
            sa.text("SELECT count(*) FROM parent WHERE id < 10000000 AND first_name IS NULL")
        ).scalar()
        parents = conn.execute(sa.text("SELECT count(*) FROM parent WHERE id < 10000000")).scalar()
    engine.dispose()
    if old != 0 or masked != expected["parent"] or untouched != parents or not kept:
        raise BenchError(
            f"wrong result: {old} expired invoices left, {masked} of {expected['parent']} "
            f"parents masked, {untouched} of {parents} other parents untouched"
        )


class Ticks:
    """Runs ticks over every pair of `config` with one state database, as run --once does."""

    def __init__(self, config: Config, url: str, state_url: str | None) -> None:
        self.config = config
        self.env = {"FLEXKIDS_DATABASE_URL": url}
        self.state: StateStore | None = None
        if state_url is not None:
            self.state = StateStore(state_url)
            self.state.migrate()
        self.pairs = list(config.pairs())
        self.rules = sum(len(effective_rules(config.catalogue, c, p)) for c, p in self.pairs)
        self.statements = 0
        """SQL statements the last tick executed on every engine (COMMIT not counted)."""

    def tick(self) -> tuple[tuple[float, float], dict[str, int]]:
        """(wall, CPU) seconds of one tick over every pair, and the rows changed per table."""
        bus = EventBus()
        if self.state is not None:
            # What a real run writes: audit trail, rule history, status.
            subscribe_state(bus, self.state, lambda: NOW)
        runner = build_runner(
            self.config,
            self.env,
            bus,
            pepper=PEPPER,
            clock=lambda: NOW,
            store=self.state,
            # As the daemon and run --once (RETENTION_SCHEMA_REUSE_SECONDS' default).
            schema_reuse_seconds=DEFAULT_SCHEMA_REUSE_SECONDS,
        )
        statements = [0]

        def tally(*_: Any) -> None:
            statements[0] += 1

        # Every engine's statements (product and state database); BEGIN, COMMIT, ROLLBACK not.
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", tally)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            reports = run_pairs(runner, self.pairs, NOW, dry_run=False)
            seconds = (time.perf_counter() - started, time.process_time() - cpu)
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", tally)
        self.statements = statements[0]
        changed: dict[str, int] = {}
        for report in reports:
            if report.outcome is not Outcome.SUCCEEDED:
                raise BenchError(f"a run ended {report.outcome}: {report.error}")
            for plan in report.rules:
                for table, count in plan.changed.items():
                    changed[table] = changed.get(table, 0) + count
        return seconds, changed

    def close(self) -> None:
        if self.state is not None:
            self.state.close()


def figures(
    seconds: tuple[float, float], pairs: int, rules: int, statements: int
) -> dict[str, float]:
    """Wall and CPU seconds, wall milliseconds per customer and per customer × rule, and
    SQL statements per customer (`statements`: the tick's, on every engine)."""
    wall, cpu = seconds
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "ms_per_customer": round(1000 * wall / pairs, 2),
        "ms_per_customer_rule": round(1000 * wall / rules, 2),
        "statements_per_customer": round(statements / pairs, 1),
    }


def measure(
    db: Database, customers: int, ticks: int, work_rows: int, profile: bool, state: str
) -> dict[str, Any]:
    """Every figure of one database (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="rt_idle_") as folder, ExitStack() as stack:
        config = write_config(Path(folder) / "config", customers)
        create_schema(db.url, "flexkids")
        seed_idle(db.url, customers)
        state_url: str | None = None
        if state == "sqlite":
            state_url = f"sqlite:///{Path(folder) / 'state.db'}"
        elif state == "postgresql":
            server = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
            state_url = stack.enter_context(postgres_database(server)).url
        runs = Ticks(config, db.url, state_url)
        try:
            pairs, rules = len(runs.pairs), runs.rules
            result: dict[str, Any] = {
                "database": db.version,
                "state": state,
                "customers": pairs,
                "rules": rules,
            }
            result["idle_first"] = figures(runs.tick()[0], pairs, rules, runs.statements)
            warm = sorted((runs.tick()[0] for _ in range(ticks)), key=lambda t: t[0])
            # Every warm idle tick runs the same statements: the last one's count.
            result["idle"] = figures(warm[len(warm) // 2], pairs, rules, runs.statements)
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                runs.tick()
                profiler.disable()
                profiler.dump_stats(str(Path(tempfile.gettempdir()) / "bench-idle.prof"))
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
                print(out.getvalue(), file=sys.stderr)
            if work_rows:
                expected = seed_work(db.url, customers, work_rows)
                seconds, changed = runs.tick()
                if changed != expected:
                    raise BenchError(f"the tick changed {changed}, expected {expected}")
                check_work(db.url, expected)
                work = figures(seconds, pairs, rules, runs.statements)
                result["work"] = {**work, "changed": changed}
                result["idle_after"] = figures(runs.tick()[0], pairs, rules, runs.statements)
            return result
        finally:
            runs.close()


@contextmanager
def databases(choice: str) -> Iterator[list[Database]]:
    with ExitStack() as stack:
        found: list[Database] = []
        if choice in ("both", "sqlite"):
            found.append(stack.enter_context(sqlite_database()))
        if choice in ("both", "postgresql"):
            server = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
            why = probe(server)
            if why is None:
                found.append(stack.enter_context(postgres_database(server)))
            elif choice == "postgresql":
                raise BenchError(f"no PostgreSQL ({why}); set {PG_URL_ENV}")
            else:
                print(f"no PostgreSQL ({why}): SQLite only", file=sys.stderr)
        yield found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.idle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=3, help="warm idle ticks (median)")
    parser.add_argument("--work-rows", type=int, default=100, help="expired invoices per customer")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one warm idle tick: the top 25 to stderr, the raw stats (pstats) to "
        "bench-idle.prof in the temporary folder",
    )
    parser.add_argument(
        "--state",
        choices=("sqlite", "postgresql", "none"),
        default="sqlite",
        help="sqlite or postgresql (a fresh database on the bench server, as in production): "
        "audit trail, rule history, status, holds, approvals as run --once; none: no state "
        "database and no audit (the product database's share alone)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    try:
        with databases(args.db) as dbs:
            for db in dbs:
                result = measure(
                    db,
                    args.customers,
                    args.ticks,
                    args.work_rows,
                    args.profile,
                    args.state,
                )
                results.append(result)
                if not args.json:
                    print(
                        f"{result['database']} (state: {result['state']}): "
                        f"{result['customers']} customers, {result['rules']} customer × rule"
                    )
                    for name in ("idle_first", "idle", "work", "idle_after"):
                        if name in result:
                            f = result[name]
                            print(
                                f"  {name:<11} {f['seconds']:8.3f} s"
                                f" (cpu {f['cpu_seconds']:7.3f} s)"
                                f"  {f['ms_per_customer']:8.2f} ms/customer"
                                f"  {f['ms_per_customer_rule']:7.2f} ms/customer×rule"
                                f"  {f['statements_per_customer']:6.1f} statements/customer"
                            )
    except BenchError as exc:
        print(f"bench.idle: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
