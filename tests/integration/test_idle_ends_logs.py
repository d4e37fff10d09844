"""The log lines of an idle run whose last records are written with other runs' (worker/
idleends.py) carry the run's `run_id`, `customer` and `product`, as every line of a run does
(docs/operations.md, "Logs"), on SQLite and PostgreSQL state: they are written after the
run's own block (`bind_run`) ended, in a transaction of several runs, or alone after it.

Before, a refused status of a waiting run (`state.write_skipped`) named no run, customer or
product; a run written alone after the joint transaction failed logged its retries and its
refused checkpoint without them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from structlog.testing import capture_logs

from tests.integration.test_idle_ends import _config, _product, _runner, store  # noqa: F401
from tests.support import NOW
from worker.app import run_pairs
from worker.events import Outcome
from worker.state import StateStore

REFUSED = "kdv-6"


def _refuse(store: StateStore, table: str, when: str) -> None:  # noqa: F811
    """Refuse an INSERT into `table` when `when` holds (a statement that fails at once)."""
    with store._engine.begin() as conn:
        if store._engine.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON {table} WHEN {when} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW WHEN ({when}) "
                "EXECUTE FUNCTION refuse()"
            )
        )


def _tick(tmp_path: Path, store: StateStore) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # noqa: F811
    """Run the tick; each customer's report, and the log lines with their bound fields."""
    config = _config(tmp_path)
    runner = _runner(config, _product(tmp_path, "p.db"), store)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    return {r.customer: r for r in reports}, logs


def _names(line: dict[str, Any]) -> tuple[Any, Any, Any]:
    return line.get("run_id"), line.get("customer"), line.get("product")


def test_a_waiting_runs_refused_status_is_logged_with_its_run(
    tmp_path: Path,
    store: StateStore,  # noqa: F811
) -> None:
    _refuse(store, "pair_status", f"NEW.customer = '{REFUSED}'")
    reports, logs = _tick(tmp_path, store)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports.values())
    [skipped] = [e for e in logs if e["event"] == "state.write_skipped"]
    assert skipped["recording"] == f"the status of {REFUSED} × kidsapp"
    assert _names(skipped) == (reports[REFUSED].run_id, REFUSED, "kidsapp")


def test_runs_written_alone_after_the_joint_transaction_log_with_their_run(
    tmp_path: Path,
    store: StateStore,  # noqa: F811
) -> None:
    """kdv-6's row in `runs` is refused: the joint transaction of kdv-5 to 7 fails and each is
    written alone. Every checkpoint after kdv-4's (seq 4) is refused: left out of the joint
    transaction of kdv-1 to 3 (one for three runs: published by kdv-3, its last), and of
    kdv-5's and kdv-7's own."""
    _refuse(store, "runs", f"NEW.customer = '{REFUSED}'")
    _refuse_more(store)
    reports, logs = _tick(tmp_path, store)
    assert reports[REFUSED].outcome is Outcome.FAILED
    runs = {r.run_id: c for c, r in reports.items()}
    failed = [e for e in logs if e["event"] == "audit.checkpoint_failed"]
    assert sorted(runs.get(e.get("run_id"), "") for e in failed) == ["kdv-3", "kdv-5", "kdv-7"]
    assert all(_names(e)[1:] == (runs[e["run_id"]], "kidsapp") for e in failed), failed
    skipped = [e for e in logs if e["event"] == "state.write_skipped"]
    # The joint transaction's checkpoint is no single run's; each run's own is its run's.
    assert sorted(_names(e)[1] or "" for e in skipped) == ["", "kdv-5", "kdv-7"]
    assert all(runs.get(e.get("run_id"), "") == (e.get("customer") or "") for e in skipped)


def _refuse_more(store: StateStore) -> None:  # noqa: F811
    """Every checkpoint after seq 4 refused too (a second trigger on another table)."""
    with store._engine.begin() as conn:
        if store._engine.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_checkpoint BEFORE INSERT ON checkpoints "
                    "WHEN NEW.seq > 4 BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_checkpoint BEFORE INSERT ON checkpoints FOR EACH ROW "
                "WHEN (NEW.seq > 4) EXECUTE FUNCTION refuse()"
            )
        )
