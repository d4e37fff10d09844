"""What the commands where a person decides share: the state database with its audit
subscriber, an action id for their audit events, the --format option."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import click

from worker.app import utc_now
from worker.approvals import ApprovalError
from worker.audit import AuditTrail
from worker.cli_common import Ctx, fail
from worker.errors import ExitCode, RetentionError
from worker.events import EventBus
from worker.holds import HoldError
from worker.logging import LogSubscriber
from worker.state import StateStore

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@contextmanager
def state_and_bus(ctx: Ctx) -> Iterator[tuple[StateStore, EventBus]]:
    """The migrated state database, and a bus that writes the audit trail (required)."""
    store = ctx.settings.state_store()
    try:
        store.check()
        bus = EventBus()
        bus.subscribe(AuditTrail(store, utc_now), required=True)
        bus.subscribe(LogSubscriber())
        yield store, bus
    except (HoldError, ApprovalError) as exc:
        fail(str(exc), ExitCode.BAD_CONFIG)
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()


def action_id() -> str:
    """The `run_id` of a command's own audit events (no run: a person's action)."""
    return uuid.uuid4().hex
