"""A run in progress belongs to its process: a second `run --once` beside it leaves it alone
(it waits for the pair's lease, then runs the pair after it);
a trail cut at its end is reported as records removed, not as a crash to reconcile. The real
CLI, SQLite state and product files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import sqlalchemy as sa

from tests import kidsapp
from tests.acceptance.harness import RUN_DIR, cli, poll, worker_argv

PEPPER = "owner-test-pepper-0123456789"
OLD = dt.date(2023, 1, 1)


def _env(tmp_path: Path, product: dict[str, object], customers: dict[str, dict[str, object]]):
    folder = kidsapp.write_config(tmp_path / "config", product=product, customers=customers)
    return {
        "RETENTION_PEPPER": PEPPER,
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_CONFIG_DIR": str(folder),
        "RETENTION_LOG_LEVEL": "ERROR",
        kidsapp.URL_ENV: f"sqlite:///{tmp_path / 'p.db'}",
        "PATH": "/usr/bin:/bin",
        # A worktree's tests run its own code in the subprocess too.
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }


def _events(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(env["RETENTION_STATE_URL"])
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_a_second_run_once_does_not_close_a_live_run_as_crashed(tmp_path: Path) -> None:
    """The runbooks say: run `retention-worker run --once` in the pod where the daemon runs.
    Started while another process's run of the pair is between batches, it must leave that
    live run alone: it waits for the pair's lease and runs the pair only after the first run
    finished. One outcome per run, none `crashed`, and the trail verifies."""
    env = _env(tmp_path, kidsapp.mapping(batch_size=5, batch_pause=0.5), {"kdv-a": {}})
    kidsapp.create(env[kidsapp.URL_ENV], [(i, 1, OLD) for i in range(1, 101)])
    assert cli(["migrate"], env).returncode == 0
    first = subprocess.Popen(
        worker_argv("run", "--once"),
        cwd=RUN_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(
            lambda: _events(env, "SELECT seq FROM audit_events WHERE kind = 'batch.applied'"),
            60,
            "the first run's first batch",
        )
        second = cli(["run", "--once"], env)
        assert second.returncode == 0, second.stderr
    finally:
        first.wait(timeout=120)
    finished = _events(
        env, "SELECT run_id, payload FROM audit_events WHERE kind = 'run.finished' ORDER BY seq"
    )
    outcomes: dict[str, list[str]] = {}
    for run_id, payload in finished:
        outcomes.setdefault(str(run_id), []).append(json.loads(str(payload))["outcome"])
    assert all(len(o) == 1 for o in outcomes.values()), f"run.finished per run: {outcomes}"
    assert "crashed" not in {o for found in outcomes.values() for o in found}, outcomes
    assert len(outcomes) == 2, outcomes
    first_end, second_start = _events(
        env,
        "SELECT (SELECT MIN(at) FROM audit_events WHERE kind = 'run.finished'),"
        " (SELECT MAX(at) FROM audit_events WHERE kind = 'run.started')",
    )[0]
    assert str(second_start) > str(first_end), "the second run started before the first ended"
    verified = cli(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr


def test_a_cut_trail_is_not_reported_as_a_crash_that_reconcile_settles(tmp_path: Path) -> None:
    """Remove the newest events (a run's `run.finished`) and rewind `audit_head`: the runs
    table still says the run finished, so there is nothing to settle. Verify names records
    removed from the end, before and after `audit reconcile` and another run."""
    env = _env(tmp_path, kidsapp.mapping(batch_size=5), {"kdv-a": {}, "kdv-b": {}})
    kidsapp.create(env[kidsapp.URL_ENV], [(i, 1 + i % 2, OLD) for i in range(1, 21)])
    assert cli(["migrate"], env).returncode == 0
    assert cli(["run", "--once"], env).returncode == 0
    engine = sa.create_engine(env["RETENTION_STATE_URL"])
    try:
        with engine.begin() as conn:
            last = conn.execute(
                sa.text("SELECT MAX(seq) FROM audit_events WHERE kind = 'run.finished'")
            ).scalar()
            keep = int(last) - 1
            new_head = conn.execute(
                sa.text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": keep}
            ).scalar()
            conn.execute(sa.text("DELETE FROM audit_events WHERE seq > :s"), {"s": keep})
            conn.execute(
                sa.text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": keep, "h": new_head}
            )
    finally:
        engine.dispose()
    before = cli(["audit", "verify"], env)
    assert before.returncode == 1
    assert "removed from the end" in before.stderr, before.stderr
    assert "finished that have no run.finished record" in before.stderr, before.stderr
    assert cli(["audit", "reconcile"], env).returncode == 0
    assert cli(["run", "--once"], env).returncode == 0
    verified = cli(["audit", "verify"], env)
    assert verified.returncode == 1
    assert "reconcile" not in verified.stderr, verified.stderr
    assert "removed from the end" in verified.stderr, verified.stderr
