"""Isolation inside a pair on SQLite, PostgreSQL and MariaDB (issue 9, point 7).

A table outside the mapping (`pickup`) references one expired child with ON DELETE RESTRICT —
the drift `validate` refuses, created here behind its back as in real life. The run deletes
every other expired child of that rule, runs the later rule (`visit`), keeps the blocked
child, and reports it: in the summary, as `batch.blocked` with its key hash in the audit
trail, in `retention_rows_blocked_total`, and as the outcome `partial`. A rule whose table is
gone fails on its own while the next rule of the pair still runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import BatchBlocked, BatchFailed, BatchSettled, Event, EventBus, Outcome
from worker.keys import KeyHasher
from worker.metrics import Metrics
from worker.report import format_changes
from worker.runreport import RunReport
from worker.state import StateStore
from worker.state.models import audit_events, runs
from worker.verify import verify

OLD, RECENT = dt.date(2023, 1, 1), dt.date(2026, 10, 1)
BLOCKED = 5  # the child the unmapped pickup row references
VISIT_RULE = "kidsapp.visit.old"

METADATA = sa.MetaData()
CHILD = sa.Table(
    "child",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("left_on", sa.Date),
    mysql_engine="InnoDB",
)
VISIT = sa.Table(
    "visit",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("visited_on", sa.Date),
    mysql_engine="InnoDB",
)


def pickup(deferred: bool) -> sa.Table:
    """The unmapped table: who may pick a child up, referencing it with RESTRICT (or, on
    PostgreSQL and SQLite, a NO ACTION key checked only at COMMIT)."""
    meta = sa.MetaData()
    sa.Table("child", meta, sa.Column("id", sa.Integer, primary_key=True))
    key = (
        sa.ForeignKey("child.id", deferrable=True, initially="DEFERRED")
        if deferred
        else sa.ForeignKey("child.id", ondelete="RESTRICT")
    )
    return sa.Table(
        "pickup",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("child_id", sa.Integer, key, nullable=False),
        sa.Column("person", sa.String(100)),
        mysql_engine="InnoDB",
    )


def config(folder: Path) -> Config:
    """kidsapp with a second subject, `visit`, whose rule comes after the child rule; batches
    of 4; only customer kdv-a (tenant 1) — tenant 2's rows are another's."""
    base = kidsapp.mapping(batch_size=4)
    subjects = {
        "child": {**base["subjects"]["child"], "columns": {"name": "name"}},
        "visit": {
            "kind": "child",
            "table": "visit",
            "key": ["id"],
            "columns": {"name": "name"},
            "dates": {"visited": "visited_on"},
        },
    }
    visit_rule = {
        "id": VISIT_RULE,
        "subject": "visit",
        "after": {"date": "visited", "period": "1y"},
        "action": "delete",
    }
    product = {**base, "subjects": subjects, "rules": [kidsapp.rule(), visit_rule]}
    loaded = load_config(kidsapp.write_config(folder, product=product, customers={"kdv-a": {}}))
    loaded.raise_for_problems()
    return loaded


def seed(url: str, *, child: bool = True, deferred: bool | None = None) -> None:
    engine = sa.create_engine(url)
    try:
        tables = [VISIT, *([CHILD] if child else [])]
        METADATA.create_all(engine, tables=tables)
        with engine.begin() as conn:
            if child:
                conn.execute(
                    CHILD.insert(),
                    [
                        {"id": i, "tenant_id": t, "name": f"Kind {i}", "left_on": d}
                        for i, t, d in [
                            *((i, 1, OLD) for i in range(1, 13)),  # expired
                            (13, 1, RECENT),
                            (14, 1, RECENT),
                            *((i, 2, OLD) for i in range(15, 18)),  # another tenant's
                        ]
                    ],
                )
            conn.execute(
                VISIT.insert(),
                [
                    {"id": i, "tenant_id": t, "name": f"Bezoek {i}", "visited_on": d}
                    for i, t, d in [
                        (1, 1, OLD),
                        (2, 1, OLD),
                        (3, 1, OLD),
                        (4, 1, RECENT),
                        (5, 2, OLD),
                    ]
                ],
            )
        if deferred is not None:  # after any validate would have run: drift
            table = pickup(deferred)
            table.create(engine)
            with engine.begin() as conn:
                conn.execute(table.insert(), [{"id": 1, "child_id": BLOCKED, "person": "Oma"}])
    finally:
        engine.dispose()


def ids(url: str, table: str) -> list[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(
                int(i) for i in conn.execute(sa.text(f"SELECT id FROM {table}")).scalars()
            )
    finally:
        engine.dispose()


def run(cfg: Config, url: str, state: StateStore) -> tuple[RunReport, list[Event], Metrics]:
    bus = EventBus()
    subscribe_state(bus, state, lambda: NOW)
    metrics = Metrics()
    bus.subscribe(metrics)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    (report,) = run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)
    return report, seen, metrics


def audit_rows(state: StateStore, kind: str) -> list[dict[str, Any]]:
    query = sa.select(audit_events.c.payload).where(audit_events.c.kind == kind)
    return [json.loads(p) for p in state.read("test", lambda c: list(c.execute(query).scalars()))]


# Each backend's URL fixture (tests/conftest.py). MariaDB checks foreign keys at once: it has
# no deferred constraints, so the deferred cases run on SQLite and PostgreSQL only.
URL_FIXTURE = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mariadb_url"}
SQLITE = pytest.param("sqlite", id="sqlite")
POSTGRES = pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)
MARIADB = pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb)


def url_of(request: pytest.FixtureRequest, backend: str) -> str:
    url = request.getfixturevalue(URL_FIXTURE[backend])
    assert isinstance(url, str)
    return url


@pytest.mark.parametrize(
    ("backend", "deferred"),
    [
        *(
            pytest.param(b.values[0], False, id=f"{b.id}-restrict", marks=b.marks)
            for b in (SQLITE, POSTGRES, MARIADB)
        ),
        *(
            pytest.param(b.values[0], True, id=f"{b.id}-deferred", marks=b.marks)
            for b in (SQLITE, POSTGRES)
        ),
    ],
)
def test_one_blocked_row_the_rest_of_its_rule_and_the_later_rules_are_done(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, deferred: bool, state: StateStore
) -> None:
    any_db_url = url_of(request, backend)
    seed(any_db_url, deferred=deferred)
    report, seen, metrics = run(config(tmp_path / "config"), any_db_url, state)

    # By key: every other expired child of kdv-a gone; the blocked one, the recent ones and
    # tenant 2's kept; the later rule ran; the unmapped row is untouched.
    assert ids(any_db_url, "child") == [BLOCKED, 13, 14, 15, 16, 17]
    assert ids(any_db_url, "visit") == [4, 5]
    assert ids(any_db_url, "pickup") == [1]

    assert report.outcome is Outcome.PARTIAL, report.error
    assert report.error is None
    child = next(p for p in report.rules if p.rule == kidsapp.RULE)
    assert (child.blocked, child.changed) == (1, {"child": 11})
    visit = next(p for p in report.rules if p.rule == VISIT_RULE)
    assert (visit.blocked, visit.changed) == (0, {"visit": 3})
    summary = format_changes([report])
    assert "PARTIAL" in summary and "1 blocked" in summary

    digest = KeyHasher(PEPPER, "kdv-a", kidsapp.PRODUCT, "child")((BLOCKED,))
    (blocked,) = [e for e in seen if isinstance(e, BatchBlocked)]
    assert (blocked.rule, blocked.key_hashes, blocked.unresolved) == (kidsapp.RULE, (digest,), 0)
    assert blocked.attempts <= 2 * 1 * 2 + 1  # one blocked row in a batch of 4
    (payload,) = audit_rows(state, "batch.blocked")
    assert payload["key_hashes"] == [digest] and payload["blocked"] == 1
    (code,) = payload["errors"]  # class and code only
    assert code in (
        "ForeignKeyViolation [SQLSTATE 23503]",
        "IntegrityError [errno 1451, SQLSTATE 23000]",
        "IntegrityError [SQLITE_CONSTRAINT_TRIGGER]",  # SQLite's RESTRICT
        "IntegrityError [SQLITE_CONSTRAINT_FOREIGNKEY]",  # SQLite's deferred key
    )
    assert "cannot delete rows of child" in blocked.errors[0]
    assert any(name in blocked.errors[0] for name in ("FOREIGN KEY constraint failed", "pickup"))
    for text in (*blocked.errors, json.dumps(payload), report.error or ""):
        assert "Oma" not in text and "Kind 5" not in text
    # A refusal at COMMIT (deferred) closes the intent it wrote with batch.failed.
    failed = [e for e in seen if isinstance(e, BatchFailed)]
    # (the batch of 4, its half (5, 6), then 5 alone), each a rolled-back transaction.
    assert len(failed) == (3 if deferred else 0)

    labels = {
        "product": kidsapp.PRODUCT,
        "customer": "kdv-a",
        "rule": kidsapp.RULE,
        "action": "delete",
    }
    assert metrics.registry.get_sample_value("retention_rows_blocked_total", labels) == 1
    outcome = state.read("test", lambda c: c.execute(sa.select(runs.c.outcome)).scalar_one())
    assert outcome == "partial"
    result = verify(state)
    assert result.ok, result.reason

    # The next run tries the blocked row again, and finds it blocked again; nothing else.
    again, _, _ = run(config(tmp_path / "again"), any_db_url, state)
    assert again.outcome is Outcome.PARTIAL and again.changed == 0 and again.blocked == 1
    assert ids(any_db_url, "child") == [BLOCKED, 13, 14, 15, 16, 17]


def test_a_rule_whose_table_is_gone_fails_and_the_next_rule_still_runs(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    seed(any_db_url, child=False)
    report, _seen, _metrics = run(config(tmp_path / "config"), any_db_url, state)
    assert report.outcome is Outcome.FAILED
    assert (report.error or "").startswith(f"rule {kidsapp.RULE}: the kidsapp database does not")
    assert "child" in (report.error or "")
    assert ids(any_db_url, "visit") == [4, 5]
    visit = next(p for p in report.rules if p.rule == VISIT_RULE)
    assert visit.changed == {"visit": 3}
    assert verify(state).ok


class Killed(BaseException):
    """The process dies: nothing after this point of the run happens."""


@pytest.mark.parametrize("backend", [SQLITE, POSTGRES])
def test_a_crash_after_a_refused_commit_settles_its_keys_as_not_applied(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, state: StateStore
) -> None:
    """A key checked at COMMIT (deferred): the batch's intent is written, COMMIT is refused,
    and the worker dies before `batch.failed`. The next start settles that intent exactly:
    every key of it, the blocked one included, still there, so not applied."""
    any_db_url = url_of(request, backend)
    seed(any_db_url, deferred=True)
    bus = EventBus()

    def die(event: Event) -> None:
        if isinstance(event, BatchFailed):
            raise Killed()

    bus.subscribe(die)  # before the audit trail: batch.failed is never written
    subscribe_state(bus, state, lambda: NOW)
    cfg = config(tmp_path / "config")
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: any_db_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    with pytest.raises(Killed):
        run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)
    assert ids(any_db_url, "child") == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    assert not verify(state).ok  # batch 2's intent has no outcome

    report, seen, _ = run(cfg, any_db_url, state)
    hasher = KeyHasher(PEPPER, "kdv-a", kidsapp.PRODUCT, "child")
    (settled,) = [e for e in seen if isinstance(e, BatchSettled)]
    assert (settled.batch, settled.applied, dict(settled.rows)) == (2, 0, {})
    assert settled.not_applied == tuple(sorted(hasher((i,)) for i in (5, 6, 7, 8)))
    assert report.outcome is Outcome.PARTIAL and report.blocked == 1
    assert ids(any_db_url, "child") == [BLOCKED, 13, 14, 15, 16, 17]
    outcomes = state.read("test", lambda c: sorted(c.execute(sa.select(runs.c.outcome)).scalars()))
    assert outcomes == ["crashed", "partial"]
    result = verify(state)
    assert result.ok, result.reason
