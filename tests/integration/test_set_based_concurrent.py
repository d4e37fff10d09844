"""A set-based delete batch (connectors/sqlfast.py) while another transaction changes one of
its expired rows: on PostgreSQL the batch's locking sub-select waits for that row and then
takes its new version (READ COMMITTED re-checks the latest version), whose locator the
DELETE's snapshot does not see, so the DELETE leaves that row, still expired. The rule must
not end there as if nothing were left: the page path confirms from the first key and takes
the row, and the backlog reported after the batches is what is really left.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, Recorder, config, run, seed
from tests.inflight import LockWaits
from tests.support import PEPPER
from worker.events import BatchIntent, RuleEvaluated
from worker.keys import KeyHasher
from worker.runreport import RunReport
from worker.state import StateStore


@pytest.mark.parametrize(
    ("change", "kept", "gone"),
    [
        # still expired: chosen in its new version, left by the DELETE, taken by the page
        ("name = 'Kind twee'", set(), {1, 2, 3, 4}),
        ("left_on = DATE '2026-11-20'", {2}, {1, 3, 4}),  # now inside its period: kept
        ("tenant_id = 2", {2}, {1, 3, 4}),  # now kdv-b's: kept
        ("id = 50", set(), {1, 3, 4, 50}),  # a new key, still expired: deleted
        ("id = 50, left_on = DATE '2026-11-20'", {50}, {1, 3, 4}),  # a new key, kept
    ],
)
def test_a_row_changed_while_the_batch_waits_is_judged_in_its_new_version(
    tmp_path: Path, pg_url: str, state: StateStore, change: str, kept: set[int], gone: set[int]
) -> None:
    """4 expired rows of kdv-a, batches of 10; another transaction changes row 2 and commits
    while the first DELETE waits for its lock. A row no longer expired or no longer kdv-a's
    stays; a row still expired goes (the DELETE leaves it, the confirming page takes it);
    the run reports 0 left after its batches and the trail names exactly the rows gone."""
    cfg = config(tmp_path, product=kidsapp.mapping(batch_size=10))
    seed(pg_url, [OLD] * 4, [OLD] * 2)
    other = sa.create_engine(pg_url)
    outcome: list[tuple[list[RunReport], Recorder]] = []
    failed: list[Exception] = []

    def work() -> None:
        try:
            outcome.append(run(cfg, pg_url, state, customer="kdv-a"))
        except Exception as exc:  # noqa: BLE001 - the test reports it below
            failed.append(exc)

    try:
        with LockWaits(pg_url) as waits, other.connect() as conn:
            transaction = conn.begin()
            conn.execute(sa.text(f"UPDATE child SET {change} WHERE id = 2"))
            worker = threading.Thread(target=work, name="run")
            worker.start()
            assert waits.until_waiting(worker)
            transaction.commit()
            worker.join(60)
    finally:
        other.dispose()

    assert not failed, failed
    [([report], recorder)] = outcome
    left = kidsapp.rows_by_id(pg_url)
    assert set(left) == kept | {10_001, 10_002}
    after = [e.eligible for e in recorder.of(RuleEvaluated) if e.after_batches]
    assert after == [0]
    hasher = KeyHasher(PEPPER, "kdv-a", kidsapp.PRODUCT, "child")
    named = sorted(h for e in recorder.of(BatchIntent) for h in e.key_hashes)
    assert named == sorted(hasher((i,)) for i in gone)
    assert report.changed == len(gone)
