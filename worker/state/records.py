"""Plain records read from and written to the state database, and its timestamps: aware, UTC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`; `outcome` and `finished_at` are None while the run is going."""

    run_id: str
    customer: str
    product: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str | None
    dry_run: bool
    error: str | None
    rows_changed: int
    # host|pid of the process that ran it (worker/owner.py); None before migration 0005.
    owner: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """An audit record before it has a place in the chain. `payload` is canonical JSON."""

    at: dt.datetime
    run_id: str
    kind: str
    customer: str
    product: str
    rule: str | None
    action: str | None
    payload: str


@dataclass(frozen=True)
class AuditRecord:
    """One row of `audit_events`, times in UTC."""

    seq: int
    at: dt.datetime
    run_id: str
    kind: str
    customer: str
    product: str
    rule: str | None
    action: str | None
    payload: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """The last appended seq and hash (seq 0 and 64 zeros while the trail is empty)."""

    seq: int
    hash: str


def utc(value: dt.datetime) -> dt.datetime:
    """A timestamp as stored: aware, in UTC. Naive values read back from SQLite are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (got a naive datetime)")
    return value.astimezone(dt.UTC)
