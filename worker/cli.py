"""The `retention-worker` command. Exit codes: see `worker.errors.ExitCode`.

0 ok · 1 a run failed · 2 bad configuration or usage · 3 awaiting approval
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from worker.app import PairSelection, build_runner, run_pairs, utc_now
from worker.configload import Config, load_config
from worker.errors import ConfigError, ExitCode, RetentionError, SettingsError
from worker.events import EventBus, Outcome
from worker.logging import LogSubscriber, configure_logging
from worker.report import format_changes, format_plan
from worker.run import RunReport
from worker.settings import Settings, load_env_file, mask_url

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 a run failed; 2 bad configuration or usage; 3 awaiting approval."
)


@dataclass
class Ctx:
    env: dict[str, str]
    settings: Settings


def fail(message: str, code: ExitCode = ExitCode.BAD_CONFIG) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Configuration directory (default: $RETENTION_CONFIG_DIR or ./config).",
    )(fn)


def select_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--product", metavar="P", help="Only this product.")(fn)
    return click.option("--customer", metavar="C", help="Only this customer.")(fn)


@click.group(epilog=EXIT_CODES_HELP)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read NAME=VALUE lines into the environment first (variables already set win).",
)
@click.version_option(package_name="retention-worker")
@click.pass_context
def main(ctx: click.Context, env_file: Path | None) -> None:
    """Find personal data past its retention period; anonymise or delete it; prove it.

    Settings come from the environment: RETENTION_CONFIG_DIR, RETENTION_STATE_URL,
    RETENTION_PEPPER (or RETENTION_PEPPER_FILE), RETENTION_HTTP_HOST,
    RETENTION_HTTP_PORT, RETENTION_LOG_LEVEL, RETENTION_LOG_FORMAT (json|console|auto),
    RETENTION_STOP_GRACE_SECONDS, RETENTION_LOCK_TIMEOUT_SECONDS,
    RETENTION_STATEMENT_TIMEOUT_SECONDS. Each product mapping (or customer, for
    one-database-per-customer products) names the variable holding its database URL.
    See docs/configuration.md and docs/operations.md.
    """
    if env_file is not None:
        try:
            load_env_file(env_file)
        except SettingsError as exc:
            fail(str(exc))
    env = dict(os.environ)
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        fail(str(exc))
    configure_logging(settings.log_level, settings.log_format, sys.stderr)
    ctx.obj = Ctx(env=env, settings=settings)


def _load(ctx: Ctx, config_dir: Path | None) -> Config:
    return load_config(config_dir or ctx.settings.config_dir)


def _print_problems(config: Config) -> None:
    for problem in config.problems:
        click.echo(f"  {problem}", err=True)


@main.command(epilog=EXIT_CODES_HELP)
@config_option
@click.option("--offline", is_flag=True, help="Check the files only; do not open databases.")
@click.pass_obj
def validate(ctx: Ctx, config_dir: Path | None, offline: bool) -> None:
    """Check the configuration, and each mapping against its live database.

    Exits 2 when a file is wrong (YAML syntax, unknown product or category, a period
    that is negative, absurd or below a legal floor), when a table or column that a
    mapping names is missing from the database, when a customer's tenant value does not
    convert exactly to the tenant column's type, or when a dependent's references leave
    out a tenant column its parent's key holds; every problem names the file, the path
    inside it and what to fix. Exits 1 when a database cannot be reached. Also prints how
    many rows each customer has, and warns about a tenant value without rows and about
    time bases holding values that are not clean dates.
    """
    from worker.checks import check_live

    config = _load(ctx, config_dir)
    if config.problems:
        click.echo(f"{len(config.problems)} problem(s) in {config.directory}:", err=True)
        _print_problems(config)
        sys.exit(ExitCode.BAD_CONFIG)
    rules = sum(len(p.rules) for p in config.products.values())
    click.echo(
        f"{config.directory}: {len(config.customers)} customer(s), "
        f"{len(config.products)} product(s), {rules} rule(s): files valid."
    )
    if offline:
        return
    live = check_live(config, ctx.env)
    for note in live.notes:
        click.echo(note)
    for warning in live.warnings:
        click.echo(f"warning: {warning}", err=True)
    for line in live.unreachable:
        click.echo(f"unreachable: {line}", err=True)
    if live.problems:
        click.echo(f"{len(live.problems)} problem(s) with the live databases:", err=True)
        for problem in live.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(ExitCode.BAD_CONFIG)
    if live.unreachable:
        sys.exit(ExitCode.RUN_FAILED)
    click.echo(f"{live.checked} database(s) match their mapping.")


def _parse_at(value: str | None) -> dt.datetime:
    if value is None:
        return utc_now()
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--at {value!r} is not an ISO date or date-time, e.g. 2027-01-31 or "
            "2027-01-31T02:00+01:00"
        )
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


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


def _exit_for(reports: list[RunReport], config: Config) -> ExitCode:
    if any(r.outcome is Outcome.FAILED for r in reports):
        return ExitCode.RUN_FAILED
    if config.problems:
        return ExitCode.BAD_CONFIG
    return ExitCode.OK


@main.command(epilog=EXIT_CODES_HELP)
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
    "e.g. 2027-01-01T12:00+01:00 to preview that day's backlog.",
)
@click.pass_obj
def plan(
    ctx: Ctx,
    config_dir: Path | None,
    customer: str | None,
    product: str | None,
    fmt: str,
    at: str | None,
) -> None:
    """Dry run: count what each rule would change, per customer × product. Changes nothing."""
    sel = PairSelection(customer, product)
    config = _checked_config(ctx, config_dir, sel)
    bus = EventBus()
    bus.subscribe(LogSubscriber())
    runner = build_runner(config, ctx.env, bus, pepper=b"plan-computes-no-hashes")
    reports = run_pairs(runner, sel.pick(config), _parse_at(at), dry_run=True)
    click.echo(format_plan(reports, fmt))
    sys.exit(_exit_for(reports, config))


@main.command(epilog=EXIT_CODES_HELP)
@config_option
@select_options
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@click.option("--dry-run", is_flag=True, help="With --once: count only, change nothing.")
@click.pass_obj
def run(
    ctx: Ctx,
    config_dir: Path | None,
    customer: str | None,
    product: str | None,
    once: bool,
    dry_run: bool,
) -> None:
    """Run the retention rules: with --once now, otherwise as a daemon on each schedule.

    The daemon runs each customer × product on its schedule (default daily at 02:00 in
    the customer's time zone; a product mapping or customer file may set its own), serves
    /metrics, /healthz and /readyz on RETENTION_HTTP_PORT, reloads the configuration on
    SIGHUP (an invalid one is refused and the old one stays), and stops cleanly on
    SIGTERM or SIGINT: the batch in flight finishes, then the process exits 0 (1 if runs
    were still busy after RETENTION_STOP_GRACE_SECONDS, default 20). A second signal
    exits at once.
    """
    from worker.audit import AuditTrail
    from worker.state import StateStore

    try:
        pepper = ctx.settings.require_pepper()
    except SettingsError as exc:
        fail(str(exc))
    if not once:
        if customer or product or dry_run:
            fail("--customer, --product and --dry-run go with --once")
        _daemon(ctx, config_dir)
    sel = PairSelection(customer, product)
    config = _checked_config(ctx, config_dir, sel)
    store = StateStore(ctx.settings.state_url)
    try:
        store.check()
        bus = EventBus()
        bus.subscribe(AuditTrail(store, utc_now), required=True)
        bus.subscribe(LogSubscriber())
        runner = build_runner(config, ctx.env, bus, pepper=pepper)
        reports = run_pairs(runner, sel.pick(config), utc_now(), dry_run=dry_run)
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()
    click.echo(format_changes(reports))
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


@main.command()
@click.pass_obj
def migrate(ctx: Ctx) -> None:
    """Create or upgrade the worker's own state database (runs and the audit trail)."""
    from worker.state import StateStore

    store = StateStore(ctx.settings.state_url)
    try:
        store.migrate()
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()
    click.echo(f"state database {mask_url(ctx.settings.state_url)} is up to date.")


@main.group()
def audit() -> None:
    """Read and check the audit trail."""


@audit.command("verify")
@click.pass_obj
def audit_verify(ctx: Ctx) -> None:
    """Recompute the hash chain; exit 1 naming the first bad event if it was tampered with."""
    from worker.audit import verify
    from worker.state import StateStore

    store = StateStore(ctx.settings.state_url)
    try:
        store.check()
        result = verify(store)
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()
    if result.ok:
        click.echo(f"audit trail verified: {result.checked} event(s), chain intact.")
        return
    click.echo(f"audit trail BROKEN: {result.reason}", err=True)
    sys.exit(ExitCode.RUN_FAILED)


@main.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo databases live.",
)
@click.option("--reset", is_flag=True, help="Start again from freshly seeded databases.")
@config_option
@click.pass_obj
def demo(ctx: Ctx, folder: Path, reset: bool, config_dir: Path | None) -> None:
    """Seed SQLite demo databases, show the plan, run once, and verify the audit trail.

    Needs no server and no environment variables. A second run finds nothing to do.
    """
    from demo.walkthrough import walkthrough

    try:
        code = walkthrough(
            folder.resolve(), config_dir or Path("config"), reset=reset, echo=click.echo
        )
    except (ConfigError, RetentionError) as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    sys.exit(code)
