"""The `retention-worker` command. Exit codes: see `worker.errors.ExitCode`.

0 ok · 1 a run failed · 2 bad configuration or usage · 3 awaiting approval

This module holds the group and `validate`, `migrate` and `demo`; `plan` and `run` are in
`worker.cli_run`, the other commands in the other `worker.cli_*` modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from worker.cli_approvals import approvals, approve, reject
from worker.cli_audit import audit
from worker.cli_common import (
    EXIT_CODES_HELP,
    Ctx,
    _load,
    _print_problems,
    config_option,
    fail,
)
from worker.cli_holds import holds
from worker.cli_run import plan, run
from worker.errors import ConfigError, ExitCode, RetentionError, SettingsError
from worker.logging import configure_logging
from worker.settings import Settings, load_env_file, mask_url


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
    RETENTION_STOP_GRACE_SECONDS, RETENTION_RETRY_BUDGET_SECONDS,
    RETENTION_LOCK_TIMEOUT_SECONDS, RETENTION_STATEMENT_TIMEOUT_SECONDS,
    RETENTION_LEASE_SECONDS, RETENTION_SCHEMA_REUSE_SECONDS, RETENTION_CHECKPOINT_KEY (or
    RETENTION_CHECKPOINT_KEY_FILE).
    Each product mapping (or customer, for one-database-per-customer products) names the
    variable holding its database URL.
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


@main.command(epilog=EXIT_CODES_HELP)
@config_option
@click.option("--offline", is_flag=True, help="Check the files only; do not open databases.")
@click.pass_obj
def validate(ctx: Ctx, config_dir: Path | None, offline: bool) -> None:
    """Check the configuration, and each mapping against its live database.

    Exits 2 when a file is wrong (YAML syntax, unknown product or category, a period
    that is negative, absurd or below a legal floor), when a table or column that a
    mapping names is missing from the database, when a customer's tenant value does not
    convert exactly to the tenant column's type, when a dependent's references leave
    out a tenant column its parent's key holds, when two customers' URLs reach one
    database (compared offline as the database they name, and live as each server says
    which it is), when an anonymisation cannot fit its
    column (NULL in a NOT NULL column, one fixed text in a UNIQUE one, a value longer than
    the column, a value a foreign key references with ON UPDATE RESTRICT / NO ACTION), when
    a foreign key from a table the mapping does not delete first refuses a delete rule (ON
    DELETE RESTRICT / NO ACTION), or when a table without a key (`key: []`) is one an
    acting ON DELETE key reaches; every problem names the file, the path inside it and what
    to fix. Exits 1 when a database cannot be reached. Also prints how many rows each
    customer has, and warns about a tenant value without rows, time bases holding values
    that are not clean dates, time bases no index serves (with the CREATE INDEX that
    would), foreign keys that cascade a delete rule's deletes, keys from tables outside the
    product's schema, and ON UPDATE keys that follow a masked value.
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


@main.command()
@click.pass_obj
def migrate(ctx: Ctx) -> None:
    """Create or upgrade the worker's own state database (runs and the audit trail)."""

    store = ctx.settings.state_store()
    try:
        store.migrate()
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()
    click.echo(f"state database {mask_url(ctx.settings.state_url)} is up to date.")


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


for _command in (audit, holds, approvals, approve, reject, plan, run):
    main.add_command(_command)
