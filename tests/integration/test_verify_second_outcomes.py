"""`audit verify` reports a batch with a second outcome: an outcome record (applied, failed
or settled) of a batch whose intent an earlier outcome closed. worker/trailrows.py refuses
such a record; a trail written by an older worker (a lease taken over) or by another tool
may hold one. The chain holds, so the trail still verifies; the note names the first such
event, so an auditor counting the batches' keys counts that batch once. An outcome without
any intent (a batch that failed before its intent) and outcomes of other batches, rules or
runs with the same number are not reported."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from worker.audit import AuditTrail, canonical_json, chain_fields, record_hash
from worker.cli import main
from worker.events import BatchApplied, BatchFailed, BatchIntent
from worker.state import StateStore
from worker.state.records import AuditEntry
from worker.verify import verify

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
RUN = "r" * 32
BATCH: dict[str, Any] = {
    "run_id": RUN,
    "customer": "kdv-001",
    "product": "kidsapp",
    "rule": "kidsapp.child",
    "action": "delete",
    "table": "child",
}


@pytest.fixture
def store(state_url: str) -> Any:
    found = StateStore(state_url)
    yield found
    found.close()


def _batch(trail: AuditTrail, number: int, rule: str = "kidsapp.child", run: str = RUN) -> None:
    """An intent and its batch.applied, as the worker writes them."""
    fields = {**BATCH, "rule": rule, "run_id": run, "batch": number}
    trail(BatchIntent(**fields, key_hashes=("a" * 64,), cutoff=AT.date()))
    trail(BatchApplied(**fields, rows={"child": 1}, categories=(), duration_seconds=0.1))


def forge_outcome(store: StateStore, kind: str, number: int) -> int:
    """Append a well-chained outcome of batch `number` past trailrows.py's fence (as an
    older worker or another writer could): the chain verifies, its meaning does not."""
    payload = {"batch": number, "rows": {"child": 1}, "applied": 1, "not_applied": []}
    entry = AuditEntry(
        at=AT + dt.timedelta(minutes=5),
        run_id=RUN,
        kind=kind,
        customer=BATCH["customer"],
        product=BATCH["product"],
        rule=BATCH["rule"],
        action=BATCH["action"],
        payload=canonical_json(payload),
    )

    def seal(seq: int, prev_hash: str) -> str:
        return record_hash(prev_hash, seq=seq, **chain_fields(entry), payload=payload)

    return store.append_audit(entry, seal).seq


@pytest.mark.parametrize("kind", ["batch.settled", "batch.applied", "batch.failed"])
def test_a_second_outcome_of_a_batch_is_reported_at_its_event(store: StateStore, kind: str) -> None:
    trail = AuditTrail(store, lambda: AT)
    _batch(trail, 1)
    _batch(trail, 2)
    assert verify(store).second_outcomes == ()
    seq = forge_outcome(store, kind, 1)
    result = verify(store)
    assert (result.ok, result.second_outcomes) == (True, ((seq, RUN, "kidsapp.child", 1),))


def test_outcomes_without_an_intent_or_of_other_batches_are_not_reported(
    store: StateStore,
) -> None:
    trail = AuditTrail(store, lambda: AT)
    _batch(trail, 1)
    _batch(trail, 1, rule="kidsapp.other")  # the same number in another rule
    _batch(trail, 1, run="s" * 32)  # and in another run
    trail(BatchFailed(**BATCH, batch=3, error="refused before its intent", duration_seconds=0.1))
    result = verify(store)
    assert (result.ok, result.second_outcomes) == (True, ())


def test_the_cli_prints_second_outcomes_as_a_note_and_exits_0(
    store: StateStore, tmp_path: Path
) -> None:
    _batch(AuditTrail(store, lambda: AT), 1)
    seq = forge_outcome(store, "batch.settled", 1)
    env = {"RETENTION_STATE_URL": store.url, "RETENTION_CONFIG_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "audit trail verified" in result.stdout
    assert "note: 1 batch outcome record(s) of a batch another outcome closed" in result.stderr
    assert f"event {seq}, run {RUN}, rule kidsapp.child, batch 1" in result.stderr
