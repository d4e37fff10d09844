"""MariaDB refuses an ON DELETE CASCADE chain deeper than InnoDB follows (15 keys: error
1296, "Got error 193 ... from InnoDB"). That is a fact about the batch's rows, like a
foreign key still referencing one (connectors/errors.py `refused_by_constraint`): the batch
is split until it goes (worker/isolation.py) and the run is `partial`. Before, the rule
failed, every night, and none of its rows went.
"""

from __future__ import annotations

from pathlib import Path

from tests import kidsapp
from tests.gate_support import OLD, config, run
from tests.rawsql import count, execute
from worker.events import BatchApplied, Outcome
from worker.state import StateStore

LENGTH = 20  # child i + 1 points at child i: deleting child 1 cascades 19 deep


def test_a_cascade_deeper_than_innodb_follows_splits_the_batch(
    tmp_path: Path, mariadb_url: str, state: StateStore
) -> None:
    execute(
        mariadb_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE, sibling_id INTEGER, "
        "FOREIGN KEY (sibling_id) REFERENCES child (id) ON DELETE CASCADE)",
        (
            "INSERT INTO child VALUES (:i, 1, 'Kind', 'pinda', :d, :s)",
            [{"i": i, "d": OLD, "s": i - 1 if i > 1 else None} for i in range(1, LENGTH + 1)],
        ),
    )
    cfg = config(tmp_path, product=kidsapp.mapping())
    [first], recorder = run(cfg, mariadb_url, state, customer="kdv-a")
    [second], again = run(cfg, mariadb_url, state, customer="kdv-a")

    assert first.outcome is Outcome.PARTIAL
    assert 0 < first.changed < LENGTH
    assert second.outcome is Outcome.SUCCEEDED
    applied = [*recorder.of(BatchApplied), *again.of(BatchApplied)]
    assert sum(e.rows["child"] for e in applied) == first.changed + second.changed == LENGTH
    assert count(mariadb_url, "child") == 0
