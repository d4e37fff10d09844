"""Fixtures for the acceptance tests: the real CLI, a copied configuration, real PostgreSQL.

Each test gets three fresh product databases (the shared FlexKids one and a Konnect one per
customer), a migrated SQLite state database, and a copy of the tests' configuration in
which every customer runs every product every two seconds and FlexKids works in batches of 25
with a pause between them, so a run with a few hundred rows lasts seconds and can be interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.acceptance.harness import Worker, cli, env_without, free_port, worker_argv
from tests.support import copy_config

EVERY_TWO_SECONDS = "*/2 * * * * *"
BATCH_SIZE = 25
BATCH_PAUSE = 0.2
PEPPER = "acceptance-pepper-0123456789abcdef"


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def set_schedule(config_dir: Path, customer: str, product: str, cron: str) -> None:
    """Give one customer × product its own schedule in the customer's file."""
    path = config_dir / "customers" / f"{customer}.yaml"
    data = read_yaml(path)
    data["products"][product]["schedule"] = {"cron": cron, "timezone": "Europe/Amsterdam"}
    write_yaml(path, data)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the tests' configuration: every pair runs every 2 s, FlexKids batches small."""
    target = copy_config(tmp_path)
    for path in sorted((target / "customers").glob("*.yaml")):
        for product in read_yaml(path)["products"]:
            set_schedule(target, path.stem, product, EVERY_TWO_SECONDS)
    flexkids = target / "products" / "flexkids.yaml"
    data = read_yaml(flexkids)
    data["batch_size"] = BATCH_SIZE
    data["batch_pause"] = BATCH_PAUSE
    write_yaml(flexkids, data)
    return target


@dataclass
class Setup:
    """What a test needs to start the worker: its environment, port and config folder."""

    env: dict[str, str]
    config_dir: Path
    port: int
    state_url: str
    started: list[Worker] = field(default_factory=list)

    def start(self, **overrides: str) -> Worker:
        """Start `run` (the daemon) with this setup's environment plus `overrides`."""
        env = {**self.env, **overrides}
        worker = Worker(worker_argv("run", "--config", str(self.config_dir)), env, self.port)
        self.started.append(worker)
        return worker

    def cli(self, *args: str) -> Any:
        return cli(list(args), self.env)


@pytest.fixture
def setup(
    tmp_path: Path, config_dir: Path, product_dbs: dict[str, str]
) -> Iterator[Callable[..., Setup]]:
    """Factory: a migrated state database and the worker's environment (product URLs
    overridable); every worker started through it is killed at teardown if still alive."""
    made: list[Setup] = []

    def make(**product_urls: str) -> Setup:
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        port = free_port()
        base = env_without(os.environ, ("RETENTION_", "FLEXKIDS_", "KONNECT_"))
        env = {
            **base,
            **product_dbs,
            **product_urls,
            "RETENTION_LOG_FORMAT": "json",
            "RETENTION_LOG_LEVEL": "INFO",
            "RETENTION_HTTP_HOST": "127.0.0.1",
            "RETENTION_HTTP_PORT": str(port),
            "RETENTION_PEPPER": PEPPER,
            "RETENTION_STATE_URL": state_url,
            # An unreachable database fails its pair after 2 s of retries, not 60.
            "RETENTION_RETRY_BUDGET_SECONDS": "2",
        }
        migrated = cli(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        result = Setup(env, config_dir, port, state_url)
        made.append(result)
        return result

    yield make
    for one in made:
        for worker in one.started:
            worker.kill()
