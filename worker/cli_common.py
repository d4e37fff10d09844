"""What every `retention-worker` command shares: its context, option helpers and `fail`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

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
