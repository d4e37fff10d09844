"""What every `retention-worker` command shares: its context, option helpers, `fail`, and
reading the configuration directory (`_load`, `_print_problems`)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from worker.app import utc_now
from worker.configload import Config, load_config
from worker.errors import ExitCode
from worker.settings import Settings

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 a run failed or left rows blocked (partial); 2 bad configuration or "
    "usage; 3 awaiting approval."
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


#: The earliest `--at`: the earliest time basis the worker reads (connectors.base.EARLIEST_BASIS,
#: 1900-01-01) plus 100 years, twice the longest period a rule may have (50 years).
EARLIEST_AT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def parse_at(value: str | None) -> dt.datetime:
    """`--at WHEN`: an ISO date or date-time (UTC without an offset); now when not given.
    Exits 2 naming the expected form when WHEN does not parse, and when it is before
    `EARLIEST_AT` (1900 plus the longest period a rule may have: every cutoff then stays a
    real date the databases and the calendar arithmetic can hold)."""
    if value is None:
        return utc_now()
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--at {value!r} is not an ISO date or date-time, e.g. 2027-01-31 or "
            "2027-01-31T02:00+01:00"
        )
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if at < EARLIEST_AT:
        fail(
            f"--at {value} is before {EARLIEST_AT.date().isoformat()}: a time basis before "
            "1900 is never read as a date, so no rule can be evaluated that early; give a "
            "later instant"
        )
    return at


def run_at(value: str | None) -> dt.datetime:
    """`run --once --at`: the instant to evaluate the rules at, never after now (a run does
    only what is due; a later day's backlog is previewed with `plan --at`)."""
    now = utc_now()
    at = parse_at(value) if value is not None else now
    if at > now:
        fail(
            f"--at {value} is after now ({now.isoformat(timespec='seconds')}): a run changes "
            "only what is due by now; preview a later day with `plan --at`"
        )
    return at


def _load(ctx: Ctx, config_dir: Path | None) -> Config:
    return load_config(config_dir or ctx.settings.config_dir, ctx.env)


def _print_problems(config: Config) -> None:
    for problem in config.problems:
        click.echo(f"  {problem}", err=True)
