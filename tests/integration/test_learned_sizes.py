"""Tuned batch sizes carried over between runs (worker/batchsize.py, LearnedSizes): the
daemon's jobs share them (each job builds its own runner), and a size that made a batch fail
(the statement timeout, on a customer whose rows are slower) is not carried to the next run."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests import kidsapp
from tests.gate_support import OLD, Recorder, config, seed
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.daemon import Daemon
from worker.events import BatchApplied, EventBus, Outcome
from worker.settings import Settings
from worker.state import StateStore


def test_the_daemons_next_job_starts_at_the_size_the_last_one_learned(tmp_path: Path) -> None:
    """The daemon builds a runner per job (customer × product): kdv-b's job starts at the 16
    rows kdv-a's job reached (as `run --once` does, test_set_based_delete), not at 2 again;
    a reload starts afresh."""
    url = f"sqlite:///{tmp_path / 'kids.db'}"
    cfg_dir = kidsapp.write_config(
        tmp_path / "config", product=kidsapp.mapping(batch_size=2, batch_seconds=60)
    )
    seed(url, [OLD] * 20, [OLD] * 14)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(state_url).migrate()
    settings = Settings(config_dir=cfg_dir, state_url=state_url, http_port=0, pepper=PEPPER)
    daemon = Daemon(settings, {kidsapp.URL_ENV: url}, cfg_dir, clock=lambda: NOW)
    recorder = Recorder()
    daemon.bus.subscribe(recorder)

    def sizes(customer: str) -> list[int]:
        return [e.rows["child"] for e in recorder.of(BatchApplied) if e.customer == customer]

    try:
        assert daemon.load() is True
        daemon.run_job("kdv-a", kidsapp.PRODUCT)
        daemon.run_job("kdv-b", kidsapp.PRODUCT)
        assert sizes("kdv-a") == [2, 4, 8, 6]
        assert sizes("kdv-b") == [14]  # before: [2, 4, 8]
        learned = daemon.learned_sizes
        assert daemon.load() is True  # a reload (SIGHUP) learns afresh
        assert daemon.learned_sizes is not learned
    finally:
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=False)
        daemon.state.close()


def test_a_size_that_timed_out_is_not_carried_to_the_next_run(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """kdv-a's rows are fast and its batches reach 64; kdv-b's rows take 50 ms each (a
    trigger), so its first batch at 64 (30 rows, 1.5 s) hits the 1 s statement timeout. The
    next kdv-b run starts at batch_size again and finishes; before, it started at 64 and
    failed every run for as long as the process lived."""
    timeouts = {"lock_seconds": 1, "statement_seconds": 1}
    product = kidsapp.mapping(batch_size=2, batch_seconds=0.5, timeouts=timeouts)
    cfg = config(tmp_path, product=product)
    seed(pg_url, [OLD] * 70, [OLD] * 30)
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF OLD.tenant_id = 2 THEN PERFORM pg_sleep(0.05); END IF; RETURN OLD; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER slow BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION slow()"
            )
        )
    engine.dispose()
    bus = EventBus()
    subscribe_state(bus, state, lambda: NOW)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: pg_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    outcomes = []
    for customer in ("kdv-a", "kdv-b", "kdv-b"):
        pairs = [(c, p) for c, p in cfg.pairs() if c.customer == customer]
        [report] = run_pairs(runner, pairs, NOW, dry_run=False)
        outcomes.append(report.outcome)
    assert outcomes == [Outcome.SUCCEEDED, Outcome.FAILED, Outcome.SUCCEEDED]
    assert kidsapp.rows_by_id(pg_url) == {}
