"""The commands that evaluate the rules: `plan` (a dry run that counts) and `run` (once, or
as the daemon on each schedule), with the exit code their reports give.

Registered on the `retention-worker` group in `worker.cli`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from worker.app import (
    PairSelection,
    build_runner,
    reconcile_all,
    run_pairs,
    subscribe_state,
)
from worker.cli_common import (
    EXIT_CODES_HELP,
    Ctx,
    _load,
    _print_problems,
    config_option,
    fail,
    parse_at,
    run_at,
    select_options,
)
from worker.configload import Config
from worker.errors import ExitCode, RetentionError, SettingsError
from worker.events import EventBus, Outcome
from worker.explain import explain_pairs, format_explained
from worker.logging import LogSubscriber
from worker.plandoc import set_aside
from worker.progress import Progress
from worker.report import format_changes, format_plan
from worker.runreport import RunReport

if TYPE_CHECKING:
    from worker.state import StateStore


def _checked_config(ctx: Ctx, config_dir: Path | None, sel: PairSelection) -> Config:
    config = _load(ctx, config_dir)
    if config.problems:
        click.echo(
            f"{len(config.problems)} configuration problem(s); the pairs they touch are skipped:",
            err=True,
        )
        _print_problems(config)
    if sel.customer and sel.customer not in config.customers:
        fail(f"no valid customer {sel.customer!r}; known: {', '.join(sorted(config.customers))}")
    if sel.product and sel.product not in config.products:
        fail(f"no valid product {sel.product!r}; known: {', '.join(sorted(config.products))}")
    return config


def _state_for_reading(ctx: Ctx) -> StateStore | None:
    """The state database for a dry run's holds and approvals; None (with a warning on
    stderr) when it is missing or not migrated, since counting changes nothing."""

    store = ctx.settings.state_store()
    try:
        store.check()
    except RetentionError as exc:
        store.close()
        click.echo(
            f"warning: {exc}; legal holds and approvals are not taken into account", err=True
        )
        return None
    return store


def _exit_for(reports: list[RunReport], config: Config) -> ExitCode:
    """1 when a pair failed or left rows the database refused (partial), else 2 when files
    were set aside, else 3 when a rule waits for approval (a real run: a dry run only
    counts), else 0."""
    if any(r.outcome in (Outcome.FAILED, Outcome.PARTIAL) for r in reports):
        return ExitCode.RUN_FAILED
    if config.problems:
        return ExitCode.BAD_CONFIG
    if any(r.awaiting and not r.dry_run for r in reports):
        return ExitCode.AWAITING_APPROVAL
    return ExitCode.OK


@click.command(epilog=EXIT_CODES_HELP)
@config_option
@select_options
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help="Evaluate as of this ISO date-time (default: now; without an offset it is UTC), "
    "e.g. 2027-01-01T12:00+01:00 to preview that day's backlog; not before 2000-01-01.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Also show the product database's plan for each rule's selection and, for a large "
    "table whose plan searches no index on the tenant column and the time basis (a table "
    "scan, the primary key or a one-column index with a filter), print the CREATE INDEX on "
    "both (table format only).",
)
@click.pass_obj
def plan(
    ctx: Ctx,
    config_dir: Path | None,
    customer: str | None,
    product: str | None,
    fmt: str,
    at: str | None,
    explain: bool,
) -> None:
    """Dry run: count what each rule would change, per customer × product. Changes nothing.

    Per table, the counts are what `run --once` at the same instant changes: the subject's
    rows, their dependents (nested), related rows, and rows of other tables that the
    database's foreign keys delete or set to NULL with them (ON DELETE CASCADE / SET NULL /
    SET DEFAULT).

    Rows a run would block and leave, because such a key (or an ON UPDATE key on a masked
    column) reaches a row it must not touch (a row that is not eligible, another tenant's,
    a row outside the product's schema), are counted apart, as "at least N would be
    blocked" with the keys and tables why (docs/operations.md, "run --once and plan").
    """
    if explain and fmt != "table":
        fail("--explain prints text: use it with --format table (the default)", ExitCode.BAD_CONFIG)
    sel = PairSelection(customer, product)
    config = _checked_config(ctx, config_dir, sel)
    bus = EventBus()
    bus.subscribe(LogSubscriber())
    store = _state_for_reading(ctx)
    if store is not None and not ctx.settings.pepper:
        click.echo(
            "warning: RETENTION_PEPPER is not set; holds on single records cannot be matched",
            err=True,
        )
    runner = build_runner(
        config,
        ctx.env,
        bus,
        pepper=ctx.settings.pepper or b"plan-without-a-pepper",
        retry=ctx.settings.retry_policy(),
        store=store,
    )
    when = parse_at(at)
    try:
        reports = run_pairs(runner, sel.pick(config), when, dry_run=True)
    finally:
        if store is not None:
            store.close()
    click.echo(format_plan(reports, fmt, when, set_aside(config.problems)))
    if explain:
        click.echo(format_explained(explain_pairs(runner, sel.pick(config), when)))
    sys.exit(_exit_for(reports, config))


@click.command(epilog=EXIT_CODES_HELP)
@config_option
@select_options
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@click.option("--dry-run", is_flag=True, help="With --once: count only, change nothing.")
@click.option(
    "--scheduled",
    is_flag=True,
    help="With --once: run as the scheduled run of the current tick of each pair's "
    "schedule, like the daemon: skip pairs that another process (a daemon replica, "
    "another CronJob) already finished in that tick. The Helm chart's CronJobs use it.",
)
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help="With --once: evaluate the rules as of this ISO date-time, not after now (default: "
    "now; without an offset it is UTC), to reproduce an earlier run: only what was due then "
    "changes. A later instant, or one before 2000-01-01, is refused (preview a later day "
    "with `plan --at`).",
)
@click.pass_obj
def run(
    ctx: Ctx,
    config_dir: Path | None,
    customer: str | None,
    product: str | None,
    once: bool,
    dry_run: bool,
    scheduled: bool,
    at: str | None,
) -> None:
    """Run the retention rules: with --once now, otherwise as a daemon on each schedule.

    With --once, every customer × product selected (--customer, --product) is run in
    turn; one pair's failure never stops the next. Before a pair runs, its lease for the
    current tick of its schedule is taken in the state database: a pair that another process
    (a daemon replica, another run --once) is running is waited for, and taken over if that
    process is gone or stops renewing its lease for RETENTION_LEASE_SECONDS (default 60).
    With --scheduled, a pair already done in this tick is skipped. With --at WHEN (not after
    now) the rules are evaluated as of WHEN, as `plan --at WHEN` counts them: an earlier
    instant changes only the rows due then; the audit trail's run.started records the
    instant (`as_of`). On a terminal, progress per pair and rule (rows done of eligible) goes
    to stderr. The summary lists what changed per product, table and action (rows foreign
    keys cascade to included), then each pair's outcome with its eligible and changed rows
    (and the error of a failed pair, or the process that ran a skipped one), and the
    configuration files set aside. Transient database errors (a lost connection, a
    failover) are retried for RETENTION_RETRY_BUDGET_SECONDS (default 60). Customers of
    one shared PostgreSQL database are asked together (one statement per 100) whether any
    rule has rows due; a customer found with nothing due makes no count of its own if that
    answer is at most RETENTION_SCHEMA_REUSE_SECONDS (default 30) old. The last records of
    runs that changed and wrote nothing are written together, up to 32 runs in one state
    transaction, all before the summary (their leases are kept until then).

    The daemon runs each customer × product on its schedule (default daily at 02:00 in
    the customer's time zone; a product mapping or customer file may set its own), serves
    /metrics, /healthz and /readyz on RETENTION_HTTP_PORT, reloads the configuration on
    SIGHUP (an invalid one is refused and the old one stays), and stops cleanly on
    SIGTERM or SIGINT: the batch in flight finishes, then the process exits 0 (1 if runs
    were still busy after RETENTION_STOP_GRACE_SECONDS, default 20). A second signal
    exits at once. Several daemons (replicas) may share one state database: the leases
    let one of them run each pair per tick.
    """

    try:
        pepper = ctx.settings.require_pepper()
        signer = ctx.settings.checkpoint_signer()
    except SettingsError as exc:
        fail(str(exc))
    if not once:
        if customer or product or dry_run or scheduled or at:
            fail("--customer, --product, --dry-run, --scheduled and --at go with --once")
        _daemon(ctx, config_dir)
    when = run_at(at)
    sel = PairSelection(customer, product)
    config = _checked_config(ctx, config_dir, sel)
    store = ctx.settings.state_store()
    try:
        store.check()
        bus = EventBus()
        subscribe_state(bus, store)
        bus.subscribe(LogSubscriber())
        if sys.stderr.isatty():
            bus.subscribe(Progress(sys.stderr))
        runner = build_runner(
            config,
            ctx.env,
            bus,
            pepper=pepper,
            retry=ctx.settings.retry_policy(),
            store=store,
            signer=signer,
            lease_seconds=ctx.settings.lease_seconds,
            scheduled=scheduled,
            schema_reuse_seconds=ctx.settings.schema_reuse_seconds,
        )
        if not dry_run:
            reconcile_all(config, ctx.env, bus, store, pepper=pepper)
        reports = run_pairs(runner, sel.pick(config), when, dry_run=dry_run, wait=True)
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()
    click.echo(format_changes(reports, set_aside(config.problems)))
    sys.exit(_exit_for(reports, config))


def _daemon(ctx: Ctx, config_dir: Path | None) -> NoReturn:
    from worker.daemon import Daemon

    try:
        daemon = Daemon(ctx.settings, ctx.env, config_dir or ctx.settings.config_dir)
        daemon.install_signal_handlers()
        code = daemon.serve()
    except (RetentionError, OSError) as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    if code != ExitCode.OK:
        # Runs still busy after the grace period sit in the scheduler's worker threads,
        # which a normal exit waits for (forever, on a stuck query): leave at once, and
        # their databases roll back the batch in flight.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
