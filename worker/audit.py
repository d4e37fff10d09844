"""The audit trail: one hash-chained, PII-free record per thing that matters in a run.

`AuditTrail` subscribes to the EventBus as a *required* subscriber: a batch is applied only
after its `batch.intent` record is stored, so a failed write raises AuditWriteError and stops
the run. `worker/verify.py` walks the whole chain and names the first event that does not hold up.

The chain, for an auditor who wants to recompute it without this code:

    hash(n) = sha256( prev_hash(n) || canonical_json({seq, at, run_id, kind, customer,
                                                      product, rule, action, payload}) )

`prev_hash(1)` is 64 zeros, `prev_hash(n)` is `hash(n-1)`, both as lowercase hex (ASCII);
`at` is ISO 8601 in UTC with microseconds (`2025-01-31T02:00:00.000000+00:00`); `payload` is
the stored JSON object (not its text); canonical JSON is UTF-8 with sorted keys, no
whitespace (`,` and `:` separators), no ASCII escaping.

Payloads hold counts, table names, categories, rule ids, cutoff dates, outcomes, error class
names and keyed hashes of record keys (computed by the run with the pepper): never a value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from worker.errors import AuditWriteError, StateError
from worker.events import (
    ApprovalChanged,
    BatchApplied,
    BatchBlocked,
    BatchFailed,
    BatchIntent,
    BatchSettled,
    Event,
    HoldChanged,
    RuleGated,
    RunFinished,
    RunStarted,
)
from worker.state import AuditEntry, AuditRecord, StateStore
from worker.trailrows import open_batch_keeping, run_keeping

_AUDITED = (
    RunStarted,
    BatchIntent,
    BatchApplied,
    BatchSettled,
    BatchFailed,
    BatchBlocked,
    RunFinished,
    RuleGated,
    HoldChanged,
    ApprovalChanged,
)
Audited = (
    RunStarted
    | BatchIntent
    | BatchApplied
    | BatchSettled
    | BatchFailed
    | BatchBlocked
    | RunFinished
    | RuleGated
    | HoldChanged
    | ApprovalChanged
)
_KEY_HASH = re.compile(r"[0-9a-f]{16,128}")
# A database error as connectors/redact.py reduces it: class and code (SQLSTATE, MariaDB
# error number, SQLite result code name).
_CODED_ERROR = re.compile(
    r"\b[A-Z][A-Za-z0-9]{1,60} "
    r"\[(?:SQLSTATE [0-9A-Z]{5}|errno \d{1,5}(?:, SQLSTATE [0-9A-Z]{5})?|SQLITE_[A-Z_]{1,40})\]"
)
_NAMED_ERROR = re.compile(r"([A-Z][A-Za-z0-9]{1,60}):")


def canonical_json(value: object) -> str:
    """Sorted keys, compact separators, UTF-8 text: the same object always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def iso_utc(at: dt.datetime) -> str:
    """The one textual form of a record's time that the hash covers."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def record_hash(
    prev_hash: str,
    *,
    seq: int,
    at: dt.datetime,
    run_id: str,
    kind: str,
    customer: str,
    product: str,
    rule: str | None,
    action: str | None,
    payload: Any,
) -> str:
    """The hex sha256 chaining one record to the previous one (see the module docstring)."""
    body = canonical_json(
        {
            "seq": seq,
            "at": iso_utc(at),
            "run_id": run_id,
            "kind": kind,
            "customer": customer,
            "product": product,
            "rule": rule,
            "action": action,
            "payload": payload,
        }
    )
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


def error_class(error: str | None) -> str | None:
    """The class and code of an error, never its text: `UniqueViolation [SQLSTATE 23505]`
    for a database error (as connectors/redact.py describes it), the leading name of one of
    the worker's own (`LostCommit: ...` → `LostCommit`), else `Error`.

    Even reduced errors name tables and constraints; the trail keeps only what classifies.
    """
    if not error:
        return None
    coded = _CODED_ERROR.search(error)
    if coded:
        return coded.group(0)
    named = _NAMED_ERROR.match(error.strip())
    return named.group(1) if named else "Error"


def _processed(processed: Mapping[tuple[str, str], Mapping[str, int]]) -> list[dict[str, Any]]:
    return [
        {"rule": rule, "action": action, "rows": {t: int(n) for t, n in rows.items()}}
        for (rule, action), rows in sorted(processed.items())
    ]


def _payload(event: Audited) -> dict[str, Any]:
    match event:
        case RunStarted():
            started: dict[str, Any] = {"dry_run": event.dry_run, "policy": event.policy}
            if event.as_of is not None:
                started["as_of"] = iso_utc(event.as_of)
            return started
        case BatchIntent():
            _only_hashes(
                event.key_hashes,
                f"batch.intent of run {event.run_id} (rule {event.rule}, batch {event.batch})",
            )
            return {
                "table": event.table,
                "batch": event.batch,
                "cutoff": event.cutoff.isoformat(),
                "keys": len(event.key_hashes),
                "key_hashes": list(event.key_hashes),
                "rows": {t: int(n) for t, n in event.rows.items()},
                **({"masks": {c: dict(m) for c, m in event.masks.items()}} if event.masks else {}),
            }
        case BatchSettled():
            _only_hashes(event.not_applied, f"batch.settled of run {event.run_id}")
            return {
                "table": event.table,
                "batch": event.batch,
                "rows": {t: int(n) for t, n in event.rows.items()},
                "total": event.total,
                "applied": event.applied,
                "not_applied": list(event.not_applied),
                "partial": event.partial,
                "settled_by": event.settled_by,
            }
        case BatchApplied():
            applied: dict[str, Any] = {
                "table": event.table,
                "batch": event.batch,
                "rows": {t: int(n) for t, n in event.rows.items()},
                "total": event.total,
                "categories": sorted(event.categories),
            }
            if event.gone_from_backups_by is not None:
                applied["gone_from_backups_by"] = event.gone_from_backups_by.isoformat()
            if event.held:
                _only_hashes(event.held, f"batch.applied of run {event.run_id}")
                applied["held"] = list(event.held)
            return applied
        case BatchFailed():
            return {"table": event.table, "batch": event.batch, "error": error_class(event.error)}
        case BatchBlocked():
            _only_hashes(event.key_hashes, f"batch.blocked of run {event.run_id}")
            return {
                "table": event.table,
                "batch": event.batch,
                "blocked": event.total,
                "key_hashes": list(event.key_hashes),
                "unresolved": event.unresolved,
                "errors": sorted({error_class(e) or "Error" for e in event.errors}),
                "attempts": event.attempts,
            }
        case RuleGated():
            return {
                "table": event.table,
                "gate": event.gate,
                "why": event.why,
                "eligible": event.eligible,
                "reasons": list(event.reasons),
                "approval_id": event.approval_id,
                "hold_ids": list(event.hold_ids),
            }
        case HoldChanged():
            if event.key_hash is not None:
                _only_hashes((event.key_hash,), f"hold.{event.change} {event.hold_id}")
            return {
                "hold_id": event.hold_id,
                "scope": event.scope,
                "matter": event.matter,
                "by": event.by,
                "reason_sha256": event.reason_sha256,
                "table": event.table,
                "key_hash": event.key_hash,
            }
        case ApprovalChanged():
            return {
                "approval_id": event.approval_id,
                "status": event.status,
                "why": event.why,
                "eligible": event.eligible,
                "cutoff": event.cutoff.isoformat(),
                "bound": event.bound,
                "by": event.by,
                "reason_sha256": event.reason_sha256,
                "approvers": event.approvers,
                "approvers_needed": event.approvers_needed,
            }
        case RunFinished():
            return {
                "outcome": str(event.outcome),
                "dry_run": event.dry_run,
                "rows_changed": _rows_changed(event),
                "processed": _processed(event.processed),
                "error": error_class(event.error),
            }


def _only_hashes(hashes: tuple[str, ...], what: str) -> None:
    """Refuse rather than risk storing raw record keys in the evidence."""
    bad = sum(1 for h in hashes if not _KEY_HASH.fullmatch(h))
    if bad:
        raise AuditWriteError(
            f"{what}: {bad} of {len(hashes)} key hashes are not lowercase hex keyed hashes;"
            " nothing was written and the batch must not be applied"
        )


def _rows_changed(event: RunFinished) -> int:
    # A dry run only counts what it would change; it changes nothing.
    if event.dry_run:
        return 0
    return sum(int(n) for rows in event.processed.values() for n in rows.values())


class AuditTrail:
    """EventBus subscriber writing the audit trail (subscribe it with `required=True`)."""

    def __init__(self, store: StateStore, clock: Callable[[], dt.datetime]) -> None:
        self._store = store
        self._clock = clock

    def __call__(self, event: Event) -> None:
        if not isinstance(event, _AUDITED):
            return
        payload = _payload(event)
        try:
            self._append(event, payload)
        except (StateError, ValueError) as exc:
            raise AuditWriteError(
                f"could not write {event.name} of run {event.run_id} to the audit trail: {exc}"
            ) from exc

    def _append(self, event: Audited, payload: dict[str, Any]) -> None:
        rule = getattr(event, "rule", None)
        action = getattr(event, "action", None)
        at = self._clock()
        if at.tzinfo is None:
            raise AuditWriteError("the audit clock returned a naive datetime; it must be UTC-aware")
        entry = AuditEntry(
            at=at.astimezone(dt.UTC),
            run_id=event.run_id,
            kind=event.name,
            customer=event.customer,
            product=event.product,
            rule=rule,
            action=action,
            payload=canonical_json(payload),
        )

        def seal(seq: int, prev_hash: str) -> str:
            return record_hash(prev_hash, seq=seq, **chain_fields(entry), payload=payload)

        also = run_keeping(event, payload, self._store.url) or open_batch_keeping(event)
        if isinstance(event, (RunStarted, RunFinished)):
            # Guards no product change: rides with the run's next write (worker/state/gather.py).
            self._store.append_audit_later(entry, seal, also)
            return
        self._store.append_audit(entry, seal, also)


def chain_fields(entry: AuditEntry | AuditRecord) -> dict[str, Any]:
    """The fields of a record that its hash covers, besides seq, payload and prev_hash."""
    return {
        "at": entry.at,
        "run_id": entry.run_id,
        "kind": entry.kind,
        "customer": entry.customer,
        "product": entry.product,
        "rule": entry.rule,
        "action": entry.action,
    }
