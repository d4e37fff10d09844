"""Verifying the audit trail: the hash chain, the head, checkpoints kept elsewhere, and the
state tables that must agree with it (docs/audit.md).

`verify` streams the chain in seq order and stops at the first record that does not hold up;
it never trusts the stored hashes, only what it recomputes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection

from worker.audit import chain_fields, record_hash
from worker.state import ZERO_HASH, AuditRecord, StateStore
from worker.state.models import audit_events, open_batches, runs


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found: `first_bad_seq` is the lowest seq that is missing or does not hold
    up (every event before it verified); None when the chain is intact."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    # Policy fingerprint → runs that started under it (from the verified run.started records).
    policies: dict[str, int] = field(default_factory=dict)
    # Intents without an outcome: (run_id, rule, batch, seq of the intent).
    unsettled: tuple[tuple[str, str, int, int], ...] = ()
    # Runs started but never finished.
    open_runs: tuple[str, ...] = ()
    # run.finished records of runs with no open run.started before them (a second end, or an
    # end without a start), as (seq, run_id): the chain holds, the trail's meaning does not.
    # Worker versions before the runs table refused a second end wrote such records (a run
    # whose lease was lost, closed as crashed by the new holder, then ending itself).
    stray_ends: tuple[tuple[int, str], ...] = ()
    # Outcomes (applied, failed, settled) of a batch whose intent an earlier outcome closed,
    # as (seq, run_id, rule, batch): a batch counted twice. worker/trailrows.py refuses them;
    # earlier versions could write one when a run's lease was taken over.
    second_outcomes: tuple[tuple[int, str, str, int], ...] = ()


# An intent and the records that close it. `batch.blocked` (rows a refused batch left,
# worker/isolation.py) closes no intent: the parts it applied have intents and outcomes of
# their own, and an intent a refusal at COMMIT leaves is closed by `batch.failed`.
_BATCH_KINDS = ("batch.intent", "batch.applied", "batch.failed", "batch.settled")


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"event {first} is missing"
    return f"events {first} to {last} are missing"


def verify(
    store: StateStore, batch_size: int = 1000, anchors: Mapping[int, str] | None = None
) -> VerifyResult:
    """Walk the chain in seq order, streaming; stop at the first record that does not hold up.

    `anchors` (seq → hash, from checkpoints kept outside the state database) must each be
    found in the chain: a trail shorter than an anchor, or with another hash at its seq, was
    truncated or rewritten (worker/checkpoints.py).
    """
    anchors = dict(anchors or {})
    checked = 0
    prev_seq, prev_hash = 0, ZERO_HASH
    policies: dict[str, int] = {}
    started: dict[str, int] = {}
    pending: dict[tuple[str, str, int], int] = {}
    # The batches an outcome closed, as Python hashes of their keys, not the keys: about 60
    # bytes a batch for a trail of millions (a collision would only add a false note).
    closed: set[int] = set()
    stray: list[tuple[int, str]] = []
    doubled: list[tuple[int, str, str, int]] = []

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(ok=False, checked=checked, first_bad_seq=seq, reason=reason)

    with store.audit_snapshot(batch_size) as (head, records):
        for record in records:
            seq = record.seq
            if seq != prev_seq + 1:
                follows = f"follows event {prev_seq}" if prev_seq else "is the first event"
                missing = _missing(prev_seq + 1, seq - 1)
                return bad(prev_seq + 1, f"event {seq}: {follows}; {missing}")
            if record.prev_hash != prev_hash:
                return bad(
                    seq,
                    f"event {seq}: does not follow event {prev_seq} (its prev_hash is not"
                    f" event {prev_seq}'s hash): events were removed, reordered or swapped",
                )
            if _recompute(record) != record.hash:
                return bad(seq, f"event {seq}: content does not match its hash")
            if anchors.get(seq, record.hash) != record.hash:
                return bad(
                    seq,
                    f"event {seq}: its hash is not the one checkpoint {seq}:{anchors[seq]} "
                    "recorded: the trail was rewritten after the checkpoint",
                )
            if record.kind == "run.started":
                policy = json.loads(record.payload).get("policy") or "(not recorded)"
                policies[policy] = policies.get(policy, 0) + 1
                started[record.run_id] = seq
            elif record.kind == "run.finished":
                if started.pop(record.run_id, None) is None:
                    stray.append((seq, record.run_id))
            elif record.kind in _BATCH_KINDS:
                batch_key = (
                    record.run_id,
                    record.rule or "",
                    int(json.loads(record.payload)["batch"]),
                )
                if record.kind == "batch.intent":
                    pending[batch_key] = seq
                elif pending.pop(batch_key, None) is not None:
                    closed.add(hash(batch_key))
                elif hash(batch_key) in closed:
                    doubled.append((seq, *batch_key))
            checked += 1
            prev_seq, prev_hash = seq, record.hash
    beyond = sorted(seq for seq in anchors if seq > prev_seq)
    if beyond:
        last = beyond[-1]
        return bad(
            prev_seq + 1,
            f"the trail ends at seq {prev_seq}, but checkpoint {last}:{anchors[last]} cannot be "
            f"reached: events {prev_seq + 1} to {last} or more were removed from its end",
        )
    if head is None:
        return bad(
            prev_seq + 1,
            f"the audit head row is missing, so events after {prev_seq} may have been removed",
        )
    if head.seq > prev_seq:
        return bad(
            prev_seq + 1,
            f"the head says seq {head.seq}, the trail ends at {prev_seq}:"
            f" {_missing(prev_seq + 1, head.seq)}",
        )
    if head.seq < prev_seq:
        return bad(
            head.seq + 1,
            f"the trail ends at {prev_seq}, after the head's seq {head.seq}: events"
            f" {head.seq + 1} to {prev_seq} were added without moving the head",
        )
    if head.hash != prev_hash:
        return bad(prev_seq, f"event {prev_seq}: its hash is not the one the head recorded")
    unsettled = tuple(
        (r, rule, b, seq) for (r, rule, b), seq in sorted(pending.items(), key=lambda i: i[1])
    )
    open_runs = tuple(sorted(started, key=started.__getitem__))
    removed = _outcomes_without_records(store, prev_seq, open_runs, unsettled)
    if removed:
        return VerifyResult(
            ok=False,
            checked=checked,
            first_bad_seq=prev_seq + 1,
            reason=f"the chain ends at event {prev_seq}, but {removed}: records were removed "
            "from the end of the trail and the head moved back (a checkpoint kept outside "
            "the state database shows how many)",
            policies=policies,
            stray_ends=tuple(stray),
            second_outcomes=tuple(doubled),
            unsettled=unsettled,
            open_runs=open_runs,
        )
    if unsettled or open_runs:
        parts = []
        if unsettled:
            run_id, rule, batch, seq = unsettled[0]
            parts.append(
                f"{len(unsettled)} batch intent(s) have no outcome (the first: event {seq}, "
                f"run {run_id}, rule {rule}, batch {batch})"
            )
        if open_runs:
            parts.append(f"{len(open_runs)} run(s) never finished (the first: {open_runs[0]})")
        reason = (
            "the chain is intact, but " + " and ".join(parts) + ": a worker stopped between "
            "a change and its record, or is running now; `retention-worker audit reconcile` "
            "(or the next run of those pairs) settles them against the product databases"
        )
        return VerifyResult(
            ok=False,
            checked=checked,
            first_bad_seq=None,
            reason=reason,
            policies=policies,
            stray_ends=tuple(stray),
            second_outcomes=tuple(doubled),
            unsettled=unsettled,
            open_runs=open_runs,
        )
    return VerifyResult(
        ok=True,
        checked=checked,
        first_bad_seq=None,
        reason="the chain is intact",
        policies=policies,
        stray_ends=tuple(stray),
        second_outcomes=tuple(doubled),
    )


def _outcomes_without_records(
    store: StateStore,
    last_seq: int,
    open_runs: tuple[str, ...],
    unsettled: tuple[tuple[str, str, int, int], ...],
) -> str:
    """What the state tables know ended while the trail has no record of it ('' if none).

    `runs` gets its outcome and `open_batches` loses its row in the same transaction as the
    `run.finished` / batch-outcome record (StateStore.append_audit), so a run with an outcome
    but no `run.finished`, or an intent with no open batch and no outcome record, means
    records were cut from the trail, not a crash to settle. A record written after the
    verified snapshot (seq > `last_seq`: a worker running now) is not counted as cut. Each
    state table is read before the records written since: on PostgreSQL every read sees
    what is committed when it starts, and an end committed between them must not look cut.
    """
    if not open_runs and not unsettled:
        return ""

    def recorded_since(conn: Connection, kinds: tuple[str, ...]) -> set[tuple[str, str]]:
        return {
            (r, rule or "")
            for r, rule in conn.execute(
                sa.select(audit_events.c.run_id, audit_events.c.rule).where(
                    audit_events.c.seq > last_seq, audit_events.c.kind.in_(kinds)
                )
            )
        }

    def read(conn: Connection) -> str:
        found = []
        if open_runs:
            # `runs` first, the records after: each read sees what is committed when it
            # starts (PostgreSQL), and a run's outcome commits with its record, so a run
            # that ends between the two reads is never an outcome without its record.
            with_outcome = conn.execute(
                sa.select(runs.c.run_id, runs.c.outcome)
                .where(runs.c.run_id.in_(open_runs), runs.c.outcome.is_not(None))
                .order_by(runs.c.started_at)
            ).all()
            finished_since = {r for r, _ in recorded_since(conn, ("run.finished",))}
            ended = [(str(r), str(o)) for r, o in with_outcome if r not in finished_since]
            if ended:
                run_id, outcome = ended[0]
                found.append(
                    f"the runs table says {len(ended)} run(s) finished that have no "
                    f"run.finished record (the first: {run_id}, {outcome})"
                )
        if unsettled:
            still_open = {
                (r, rule, int(b))
                for r, rule, b in conn.execute(
                    sa.select(open_batches.c.run_id, open_batches.c.rule, open_batches.c.batch)
                )
            }
            outcomes_since = recorded_since(conn, _BATCH_KINDS[1:])
            closed = [
                u
                for u in unsettled
                if (u[0], u[1], u[2]) not in still_open and (u[0], u[1]) not in outcomes_since
            ]
            if closed:
                run_id, rule, batch, seq = closed[0]
                found.append(
                    f"{len(closed)} batch intent(s) were closed by an outcome record the trail "
                    f"no longer has (the first: event {seq}, run {run_id}, rule {rule}, "
                    f"batch {batch})"
                )
        return " and ".join(found)

    return store.read("comparing the trail with the runs it recorded", read)


def _recompute(record: AuditRecord) -> str | None:
    try:
        payload = json.loads(record.payload)
    except ValueError:
        return None
    return record_hash(record.prev_hash, seq=record.seq, **chain_fields(record), payload=payload)
