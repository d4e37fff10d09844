"""SIGKILL between the product's COMMIT and the `batch.applied` record, then a restart.

Real PostgreSQL for the product and the state database, the real CLI as a subprocess. A
deferred trigger makes each batch's COMMIT take 0.8 s; when the 2nd batch's intent is in the
trail the test locks the audit head, so the worker, COMMIT done, waits to write
`batch.applied`; then it is killed. After the restart every deleted row is accounted for
exactly once in the trail, the killed run is closed as crashed, and `audit verify` passes
only after the settlement.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from tests import dbs, kidsapp
from tests.acceptance.harness import cli, env_without, poll, worker_argv
from worker.keys import KeyHasher

PEPPER = "crash-test-pepper-0123456789abcdef"
OLD = dt.date(2023, 1, 1)
SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger AS $$ BEGIN
  IF current_setting('rw.slept', true) IS DISTINCT FROM 'yes' THEN
    PERFORM set_config('rw.slept', 'yes', true);
    PERFORM pg_sleep(0.8);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER slow_commit AFTER DELETE ON child
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


def scalar(engine: sa.Engine, statement: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(statement)).scalar() or 0)


def test_a_kill_after_commit_is_settled_at_the_next_start(
    tmp_path: Path, pg_url: str, pg_server_url: str
) -> None:
    """Every changed row exactly once in the trail; the run closed as crashed; verify fails
    before the settlement and passes after it."""
    kidsapp.write_config(
        tmp_path / "config", product=kidsapp.with_notes(batch_size=10), customers={"kdv-a": {}}
    )
    kidsapp.create(pg_url, [(i, 1, OLD) for i in range(1, 51)], notes=2)
    product = sa.create_engine(pg_url)
    with product.begin() as conn:
        conn.execute(sa.text(SLOW_COMMIT))
    with dbs.postgres_database(pg_server_url) as state_url:
        env = {
            **env_without(os.environ, ("RETENTION_", kidsapp.URL_ENV)),
            kidsapp.URL_ENV: pg_url,
            "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
            "RETENTION_STATE_URL": state_url,
            "RETENTION_PEPPER": PEPPER,
            "RETENTION_LOG_FORMAT": "json",
        }
        assert cli(["migrate"], env).returncode == 0
        state = sa.create_engine(state_url)
        worker = subprocess.Popen(
            worker_argv("run", "--once"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            intents = "SELECT count(*) FROM audit_events WHERE kind = 'batch.intent'"
            poll(lambda: scalar(state, intents) >= 2, 60, "the 2nd batch's intent")
            with state.connect() as lock:
                lock.execute(sa.text("SELECT * FROM audit_head FOR UPDATE"))  # holds the head
                children = "SELECT count(*) FROM child"
                poll(lambda: scalar(product, children) == 30, 30, "the 2nd batch's COMMIT")
                time.sleep(0.3)  # the worker is now waiting for the head to write applied
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                lock.rollback()
        finally:
            if worker.poll() is None:
                worker.kill()
        applied = "SELECT count(*) FROM audit_events WHERE kind = 'batch.applied'"
        assert scalar(state, applied) == 1  # batch 1 recorded; batch 2 committed unrecorded
        assert scalar(product, "SELECT count(*) FROM child") == 30

        before = cli(["audit", "verify"], env)
        assert before.returncode == 1
        assert "1 batch intent(s) have no outcome" in before.stderr
        assert "1 run(s) never finished" in before.stderr

        again = cli(["run", "--once"], env, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        after = cli(["audit", "verify"], env)
        assert after.returncode == 0, after.stderr

        with state.connect() as conn:
            records = conn.execute(
                sa.text("SELECT seq, run_id, kind, payload FROM audit_events ORDER BY seq")
            ).all()
            outcomes = dict(conn.execute(sa.text("SELECT run_id, outcome FROM runs")).all())
        state.dispose()
    product.dispose()

    settled = [json.loads(r.payload) for r in records if r.kind == "batch.settled"]
    assert [(s["batch"], s["applied"], s["rows"]) for s in settled] == [
        (2, 10, {"child": 10, "child_note": 20})
    ]
    killed = next(r.run_id for r in records if r.kind == "batch.settled")
    assert outcomes[killed] == "crashed"
    assert sorted(outcomes.values()) == ["crashed", "succeeded"]
    # Exactly once: each deleted child's key hash in one recorded change (applied or settled).
    hasher = KeyHasher(PEPPER.encode(), "kdv-a", "kidsapp", "child")
    intents = {
        (r.run_id, json.loads(r.payload)["batch"]): json.loads(r.payload)["key_hashes"]
        for r in records
        if r.kind == "batch.intent"
    }
    recorded = [
        h
        for r in records
        if r.kind in ("batch.applied", "batch.settled")
        for h in intents[(r.run_id, json.loads(r.payload)["batch"])]
    ]
    assert sorted(recorded) == sorted(hasher((i,)) for i in range(1, 51))
    totals: dict[str, int] = {}
    for r in records:
        if r.kind in ("batch.applied", "batch.settled"):
            for table, n in json.loads(r.payload)["rows"].items():
                totals[table] = totals.get(table, 0) + n
    assert totals == {"child": 50, "child_note": 100}
