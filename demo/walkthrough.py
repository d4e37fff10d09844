"""`retention-worker demo`: the worker's main job on embedded SQLite databases.

The first call writes `<dir>/demo.env` (database URLs of SQLite files in `<dir>`, a state
database and a random pepper), creates the reference schemas and seeds synthetic data
around every rule's cutoff for both example customers. Every call then prints the plan,
runs once, prints what changed, and verifies the audit trail. A second call finds nothing
left to do and says so. Nothing outside `<dir>` is touched, whatever the environment says.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

from demo.generator import seed
from demo.schemas import create_schema
from worker.app import (
    PairSelection,
    build_runner,
    database_url,
    run_pairs,
    subscribe_state,
    url_variable,
    utc_now,
)
from worker.checkpoints import Checkpointer, new_key_pair
from worker.configload import Config, load_config
from worker.errors import ExitCode
from worker.events import EventBus, Outcome
from worker.logging import LogSubscriber, configure_logging
from worker.policy import effective_rules, rule_cutoff
from worker.report import format_changes, format_plan
from worker.settings import Settings, load_env_file
from worker.state import StateStore
from worker.verify import verify

Echo = Callable[[str], None]


def demo_env(folder: Path, config: Config) -> dict[str, str]:
    """The demo's own settings: SQLite files in `folder`, a fresh random pepper, and a fresh
    key pair signing the audit checkpoints (the private key in `folder`)."""
    private_pem, _public = new_key_pair()
    key = folder / "checkpoint-key.pem"
    key.touch(mode=0o600)
    key.write_text(private_pem, encoding="ascii")
    env = {
        "RETENTION_STATE_URL": f"sqlite:///{folder / 'state.db'}",
        "RETENTION_CONFIG_DIR": str(config.directory.resolve()),
        "RETENTION_PEPPER": secrets.token_hex(24),
        "RETENTION_CHECKPOINT_KEY_FILE": str(key),
    }
    for customer, mapping in config.pairs():
        variable = url_variable(customer, mapping)
        env[variable] = f"sqlite:///{folder / (variable.lower() + '.db')}"
    return env


def _seed_all(config: Config, env: dict[str, str], now: dt.datetime, echo: Echo) -> None:
    created: set[str] = set()
    for customer, mapping in config.pairs():
        url = database_url(customer, mapping, env)
        if url not in created:
            create_schema(url, mapping.product)
            created.add(url)
        around = sorted(
            {
                rule_cutoff(r, now, customer.timezone).date
                for r in effective_rules(config.catalogue, customer, mapping)
            }
        )
        chosen = customer.products[mapping.product]
        tenant = int(chosen.tenant) if chosen.tenant is not None else None
        rows = seed(
            url,
            mapping.product,
            tenant=tenant,
            today=now.date(),
            around=around,
            seed=zlib.crc32(f"{customer.customer}/{mapping.product}".encode()),
        )
        echo(
            f"  seeded {customer.customer} × {mapping.product}: {sum(rows.values())} rows "
            f"in {len(rows)} tables"
        )


def walkthrough(folder: Path, config_dir: Path, *, reset: bool, echo: Echo) -> int:
    config = load_config(config_dir)
    config.raise_for_problems()
    if reset and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env_file = folder / "demo.env"
    fresh = not env_file.exists()
    if fresh:
        lines = [f"{k}={v}" for k, v in demo_env(folder, config).items()]
        env_file.write_text("# written by `retention-worker demo`\n" + "\n".join(lines) + "\n")
        env_file.chmod(0o600)
    demo_values: dict[str, str] = {}
    load_env_file(env_file, demo_values)
    env = {**os.environ, **demo_values}  # the demo's databases, never the environment's
    settings = Settings.from_env(env)
    if "RETENTION_LOG_LEVEL" not in os.environ:
        configure_logging("WARNING", "console")
    now = utc_now()

    store = StateStore(
        settings.state_url, retry=settings.retry_policy(), timeouts=settings.state_timeouts()
    )
    try:
        store.migrate()
        if fresh:
            echo(f"Seeding synthetic data into {folder} (SQLite, no server needed):")
            _seed_all(config, env, now, echo)
        else:
            echo(f"Using the demo databases in {folder} (`--reset` starts again).")
        pairs = PairSelection().pick(config)

        echo("\n== Plan (dry run: nothing is changed)")
        bus = EventBus()
        bus.subscribe(LogSubscriber())
        planner = build_runner(
            config,
            env,
            bus,
            pepper=settings.require_pepper(),
            retry=settings.retry_policy(),
            store=store,
        )
        echo(format_plan(run_pairs(planner, pairs, now, dry_run=True), "table", now))

        echo("\n== Run once")
        bus = EventBus()
        subscribe_state(bus, store)
        bus.subscribe(LogSubscriber())
        runner = build_runner(
            config,
            env,
            bus,
            pepper=settings.require_pepper(),
            retry=settings.retry_policy(),
            store=store,
            signer=settings.checkpoint_signer(),
        )
        reports = run_pairs(runner, pairs, now, dry_run=False)
        echo(format_changes(reports))

        echo("\n== Audit trail")
        made = Checkpointer(store, None).list()
        last = made[-1] if made else None
        result = verify(store, anchors={last.seq: last.hash} if last else None)
    finally:
        store.close()
    if result.ok:
        echo(f"verified: {result.checked} event(s), hash chain intact.")
        if last is not None:
            echo(
                f"it reaches the run's last checkpoint, seq {last.seq}, signed by key "
                f"{last.key_id} (`retention-worker audit checkpoints` lists them)."
            )
    else:
        echo(f"BROKEN: {result.reason}")
    if all(r.changed == 0 for r in reports) and not fresh:
        echo(
            "\nNothing to do: every record is within its retention period, or was already "
            "handled by an earlier run."
        )
    echo(f"\nNext: `make run` serves the daemon on these databases (settings in {env_file}).")
    failed = any(r.outcome is Outcome.FAILED for r in reports)
    return ExitCode.RUN_FAILED if failed or not result.ok else ExitCode.OK
