"""`audit verify` checks that each run of the trail ends once, after its start: a second
`run.finished` of a run (the runs table refuses one since worker/state/runlog.py's
`finish_run_in`, but a trail written by another tool or an older worker may hold one) or
an end without a start is listed with its event (`stray_ends`) and printed as a note; the
chain itself holds, so the trail still verifies (an older worker's trail must not fail
forever for a record it cannot repair)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from tests.unit.test_audit import START, record, run_events
from worker.audit import canonical_json, chain_fields, record_hash
from worker.cli import main
from worker.state import StateStore
from worker.state.records import AuditEntry
from worker.verify import verify


def forge_end(store: StateStore, run_id: str) -> int:
    """Append a well-chained run.finished of `run_id` past the runs table's guard (as a
    writer other than the worker could): the chain verifies, only its meaning is wrong."""
    payload = {"outcome": "succeeded", "dry_run": False, "rows_changed": 0, "processed": []}
    entry = AuditEntry(
        at=START + dt.timedelta(hours=1),
        run_id=run_id,
        kind="run.finished",
        customer="kdv-zonnestraal",
        product="flexkids",
        rule=None,
        action=None,
        payload=canonical_json(payload),
    )

    def seal(seq: int, prev_hash: str) -> str:
        return record_hash(prev_hash, seq=seq, **chain_fields(entry), payload=payload)

    return store.append_audit(entry, seal).seq


def test_a_second_end_of_a_run_is_reported_at_its_event(state: StateStore) -> None:
    record(state, run_events("a" * 32) + run_events("b" * 32))
    assert verify(state).ok
    seq = forge_end(state, "a" * 32)
    result = verify(state)
    assert (result.ok, result.stray_ends) == (True, ((seq, "a" * 32),))


def test_an_end_without_a_start_is_reported(state: StateStore) -> None:
    record(state, run_events("a" * 32))
    seq = forge_end(state, "c" * 32)
    result = verify(state)
    assert (result.ok, result.stray_ends) == (True, ((seq, "c" * 32),))


def test_the_cli_prints_stray_ends_as_a_note_and_exits_0(state: StateStore, tmp_path: Path) -> None:
    record(state, run_events("a" * 32))
    seq = forge_end(state, "a" * 32)
    env = {"RETENTION_STATE_URL": state.url, "RETENTION_CONFIG_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "audit trail verified" in result.stdout
    assert "note: 1 run.finished record(s)" in result.stderr
    assert f"event {seq}, run {'a' * 32}" in result.stderr
