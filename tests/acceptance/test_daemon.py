"""The daemon end to end: the real CLI in a subprocess over real PostgreSQL.

Stopping mid-run and resuming, reloading on SIGHUP, one broken customer database among
good ones, JSON logs, and `make run` after `make demo`. Waits poll logs, /metrics or the
database with a bounded timeout; none sleeps for a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.acceptance.conftest import Setup, set_schedule
from tests.acceptance.harness import (
    Worker,
    copy_tree,
    env_without,
    free_port,
    json_problems,
    pid_children,
    poll,
)
from tests.dbs import unavailable
from tests.rows import flexkids_row, konnect_row
from tests.support import REPO, insert

D = dt.date
KDV, VL = "kdv-zonnestraal", "bso-de-vlinder"
TENANT = {KDV: 1042, VL: 2077}
INVOICE_RULE = "flexkids.invoice.fiscal"
EXPIRED = 300
FLEX = "FLEXKIDS_DATABASE_URL"
FAR_FUTURE = "15 4 1 1 *"
WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _count(url: str, query: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def _ids(url: str, table: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(f"SELECT id FROM {table}")).scalars())
    finally:
        engine.dispose()


def _seed_invoices(url: str) -> set[int]:
    """300 invoices of kdv past the 7-year fiscal period; returns the ids that must stay."""
    expired = [
        flexkids_row("invoice", i, TENANT[KDV], D(2015, 1, 1) + dt.timedelta(days=i))
        for i in range(1, EXPIRED + 1)
    ]
    kept = [
        flexkids_row("invoice", 1000 + i, TENANT[c], D(2024, 3, 1))
        for i, c in enumerate([KDV, VL] * 10)
    ]
    insert(url, "invoice", expired + kept)
    return {r["id"] for r in kept}


def _audit(state_url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq, kind, customer, product, rule, payload FROM audit_events")
            ).mappings()
            return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]
    finally:
        engine.dispose()


def _state_text(state_url: str) -> str:
    """Every row of the worker's state database (runs and audit trail) as one text."""
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = [
                str(tuple(row))
                for table in ("runs", "audit_events")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            ]
    finally:
        engine.dispose()
    assert rows, "the state database holds no runs"
    return "\n".join(rows)


def test_stop_mid_run_then_resume_processes_every_row_exactly_once(
    setup: Callable[..., Setup],
) -> None:
    """SIGTERM mid-run exits 0 as interrupted; a restart finishes; each row is done once."""
    env = setup()
    flex = env.env[FLEX]
    kept = _seed_invoices(flex)
    expired_left = "SELECT count(*) FROM invoice WHERE invoice_date < '2019-01-01'"

    first = env.start()
    first.wait_event("batch.applied", rule=INVOICE_RULE)
    assert first.stop() == 0, first.tail()
    stopped = first.events("daemon.stopped")
    assert [line["clean"] for line in stopped] == [True]
    interrupted = first.events("run.finished", customer=KDV, product="flexkids")
    assert [line["outcome"] for line in interrupted] == ["interrupted"]
    assert 0 < _count(flex, expired_left) < EXPIRED, "the stop must come mid-run"
    verified = env.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr

    second = env.start()
    poll(lambda: _count(flex, expired_left) == 0, 60, "no expired invoices left")
    assert second.stop() == 0, second.tail()

    applied = [
        line["rows_total"]
        for worker in (first, second)
        for line in worker.events("batch.applied", rule=INVOICE_RULE)
    ]
    assert sum(applied) == EXPIRED
    assert _ids(flex, "invoice") == kept
    trail = _audit(env.state_url)
    assert sum(e["payload"]["total"] for e in trail if e["kind"] == "batch.applied") == EXPIRED
    hashes = Counter(
        h for e in trail if e["kind"] == "batch.intent" for h in e["payload"]["key_hashes"]
    )
    assert len(hashes) == EXPIRED
    assert [h for h, n in hashes.items() if n > 1] == []
    assert env.cli("audit", "verify").returncode == 0


def test_sighup_refuses_a_broken_config_and_applies_a_fixed_one(
    setup: Callable[..., Setup],
) -> None:
    """SIGHUP with a YAML error keeps the old config (valid 0); a fixed one reschedules."""
    env = setup()
    worker = env.start()
    worker.wait_event("daemon.started")
    worker.wait_metric("retention_config_valid", lambda v: v == 1)
    path = env.config_dir / "customers" / f"{VL}.yaml"
    good = path.read_text(encoding="utf-8")

    path.write_text(good + "products: {flexkids: [unclosed\n", encoding="utf-8")
    worker.send(signal.SIGHUP)
    worker.wait_event("config.reload_rejected")
    worker.wait_metric("retention_config_valid", lambda v: v == 0)
    rejected_at = len(worker.stderr_lines)
    # The old configuration stays in force: its jobs keep running.
    poll(
        lambda: any('"run.finished"' in line for line in worker.stderr_lines[rejected_at:]),
        30,
        "a run after the rejected reload",
    )
    assert worker.get("/healthz")[0] == 200

    path.write_text(good, encoding="utf-8")
    set_schedule(env.config_dir, VL, "flexkids", FAR_FUTURE)
    worker.send(signal.SIGHUP)
    worker.wait_event("job.scheduled", job=f"{VL}/flexkids", cron=FAR_FUTURE)
    worker.wait_metric("retention_config_valid", lambda v: v == 1)
    assert worker.proc.poll() is None
    assert worker.stop() == 0, worker.tail()
    assert [line["clean"] for line in worker.events("daemon.stopped")] == [True]


BROKEN_URL = "postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/x"


def test_one_unreachable_database_fails_only_its_pair(setup: Callable[..., Setup]) -> None:
    """A closed port fails only that customer × product; the rest succeed; no secret leaks."""
    env = setup(KONNECT_DE_VLINDER_DATABASE_URL=BROKEN_URL)
    insert(env.env[FLEX], "invoice", [flexkids_row("invoice", 1, TENANT[VL], D(2015, 1, 1))])
    worker = env.start()

    failed = worker.wait_event("run.finished", customer=VL, product="konnect", timeout=45)
    assert failed["outcome"] == "failed"
    assert "refused" in failed["error"].lower(), failed
    for customer, product in [(KDV, "flexkids"), (KDV, "konnect"), (VL, "flexkids")]:
        done = worker.wait_event("run.finished", customer=customer, product=product)
        assert done["outcome"] == "succeeded", done
    assert worker.events("run.finished", customer=VL, product="flexkids")[0]["rows_total"] == 1
    worker.wait_metric(
        "retention_runs_total", lambda v: v >= 1, outcome="failed", customer=VL, product="konnect"
    )
    assert worker.metric("retention_connector_up", customer=VL, product="konnect") == 0
    assert worker.get("/healthz")[0] == 200
    assert worker.proc.poll() is None
    assert worker.stop() == 0, worker.tail()
    output = worker.stderr_lines + worker.stdout_lines
    assert [line for line in output if "s3cret-pw" in line] == []
    assert "s3cret-pw" not in _state_text(env.state_url)
    assert json_problems(worker.stderr_lines) == []


RUN_EVENTS = {
    "run.started",
    "rule.evaluated",
    "batch.applied",
    "run.finished",
    "connector.status",
}


def test_every_log_line_is_json_and_run_lines_carry_their_context(
    setup: Callable[..., Setup],
) -> None:
    """All stderr lines are JSON objects; each run line names event, customer, product, run."""
    env = setup()
    flex = env.env[FLEX]
    insert(
        flex, "invoice", [flexkids_row("invoice", i, TENANT[KDV], D(2015, 1, 1)) for i in range(60)]
    )
    insert(flex, "parent", [flexkids_row("parent", 1, TENANT[VL], D(2020, 1, 1))])
    for variable in ("KONNECT_ZONNESTRAAL_DATABASE_URL", "KONNECT_DE_VLINDER_DATABASE_URL"):
        insert(env.env[variable], "staff", [konnect_row("staff", 1, D(2020, 1, 1))])
    worker = env.start()
    pairs = [(c, p) for c in (KDV, VL) for p in ("flexkids", "konnect")]
    for customer, product in pairs:
        done = worker.wait_event("run.finished", customer=customer, product=product)
        assert done["outcome"] == "succeeded", done
        assert done["rows_total"] > 0, done
    assert worker.stop() == 0, worker.tail()

    lines = worker.stderr_lines
    assert json_problems(lines) == []
    logs = [json.loads(line) for line in lines]
    run_lines = [line for line in logs if "run_id" in line]
    assert {line["event"] for line in run_lines} >= RUN_EVENTS
    assert {(line["customer"], line["product"]) for line in run_lines} == set(pairs)
    assert [line for line in logs if line["event"] in RUN_EVENTS and "run_id" not in line] == []


@pytest.mark.shipped_config  # the demo runs the shipped config/; asserted: it starts and stops
def test_make_run_after_make_demo_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """In a copy of the repository, `make demo` then `make run` serves probes; SIGTERM exits 0."""
    make = shutil.which("make")
    venv = Path(sys.prefix)
    if make is None or not (venv / "bin" / "retention-worker").is_file():
        unavailable("`make run` needs GNU make and the project installed in this virtualenv")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    )
    copy = tmp_path / "repo"
    copy_tree(listed.stdout.split("\0"), REPO, copy)
    port = free_port()
    env = env_without(os.environ, ("RETENTION_", "FLEXKIDS_", "KONNECT_", "MAKE", "MFLAGS"))
    env |= {"RETENTION_HTTP_HOST": "127.0.0.1", "RETENTION_LOG_FORMAT": "json"}
    # -o: never rebuild the shared virtualenv from this copy, whatever the marker's age.
    common = [make, "-o", str(venv / ".installed"), f"VENV={venv}"]

    demo = subprocess.run(
        [*common, "demo"], cwd=copy, env=env, capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (copy / ".demo" / "demo.env").is_file()

    runner = Worker(
        [*common, "run", f"RETENTION_HTTP_PORT={port}"], env, port, cwd=copy, new_session=True
    )
    try:
        poll(lambda: runner.get("/healthz")[0] == 200, 30, f"/healthz\n{runner.tail()}")
        poll(lambda: runner.get("/metrics")[0] == 200, 30, "/metrics")
        assert runner.metric("retention_config_valid") == 1
        children = poll(lambda: pid_children(runner.proc.pid), 10, "make's child process")
        assert len(children) == 1, children
        cmdline = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")
        assert any(part.endswith(b"retention-worker") for part in cmdline), cmdline
        os.kill(children[0], signal.SIGTERM)
        assert runner.wait(30) == 0, runner.tail() + "\n" + "\n".join(runner.stdout_lines)
        assert [line["clean"] for line in runner.events("daemon.stopped")] == [True]
    finally:
        if runner.proc.poll() is None:
            os.killpg(runner.proc.pid, signal.SIGKILL)
            runner.proc.wait(timeout=10)


def test_a_batch_stuck_past_the_grace_period_exits_1_without_waiting_for_it(
    setup: Callable[..., Setup],
) -> None:
    """A run blocked past RETENTION_STOP_GRACE_SECONDS: exit 1 promptly; the batch never lands."""
    env = setup()
    flex = env.env[FLEX]
    _seed_invoices(flex)
    expired_left = "SELECT count(*) FROM invoice WHERE invoice_date < '2019-01-01'"
    worker = env.start(RETENTION_STOP_GRACE_SECONDS="1")
    worker.wait_event("batch.applied", rule=INVOICE_RULE)
    engine = sa.create_engine(flex)
    try:
        with engine.connect() as conn, conn.begin():
            # Another session holds the table: the worker's next batch waits on the lock.
            conn.execute(sa.text("LOCK TABLE invoice IN ACCESS EXCLUSIVE MODE"))
            poll(lambda: _count(flex, WAITING) > 0, 15, "the worker's batch waiting on the lock")
            worker.send(signal.SIGTERM)
            assert worker.wait(10) == 1, worker.tail()
        left = _count(flex, expired_left)
    finally:
        engine.dispose()
    stopped = worker.events("daemon.stopped")
    # The run waiting on the lock never finished (another pair of the shared database may be
    # waiting on it too, as runs of several pairs go in parallel): exactly those are named.
    open_runs = {e["run_id"] for e in worker.events("run.started")} - {
        e["run_id"] for e in worker.events("run.finished")
    }
    assert len(open_runs) >= 1
    assert [(line["clean"], line["runs_unfinished"]) for line in stopped] == [
        (False, len(open_runs))
    ]
    assert left == EXPIRED - sum(
        line["rows_total"] for line in worker.events("batch.applied", rule=INVOICE_RULE)
    )
